#!/usr/bin/env python3
"""Writes the StreamPulse Grafana dashboards (dashboards/*.json beside this file).

The JSON files are committed. To change a dashboard, edit this script and rerun it
(python3 deploy/grafana/generate.py) instead of editing the JSON, so the two stay the same.
crates/streampulse/tests/prometheus_dashboards.rs checks every query against a real Prometheus
and every metric name against the binary's exposition (docs/instrumentation.md).
"""
import itertools
import json
import os

# $job and $instance are Prometheus' target labels; $job_name is a StreamPulse job (the config
# file's or one submitted with POST /jobs). Process-wide families (ingest, API, log size, build)
# have no job_name label and are selected by S; per-job families by J.
S = 'job=~"$job", instance=~"$instance"'
J = S + ', job_name=~"$job_name"'
DS = {"type": "prometheus", "uid": "${datasource}"}
RI = "$__rate_interval"

def templating(extra=()):
    return {"list": [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0, "refresh": 1, "options": []},
        {"name": "job", "label": "Job", "type": "query", "datasource": DS,
         "query": {"query": "label_values(streampulse_build_info, job)", "refId": "job"},
         "definition": "label_values(streampulse_build_info, job)",
         "refresh": 2, "multi": True, "includeAll": True, "allValue": ".+", "current": {}, "sort": 1},
        {"name": "instance", "label": "Instance", "type": "query", "datasource": DS,
         "query": {"query": 'label_values(streampulse_build_info{job=~"$job"}, instance)', "refId": "instance"},
         "definition": 'label_values(streampulse_build_info{job=~"$job"}, instance)',
         "refresh": 2, "multi": True, "includeAll": True, "allValue": ".+", "current": {}, "sort": 1},
        # Every job, stopped ones included: streampulse_job_running has a sample for each.
        {"name": "job_name", "label": "StreamPulse job", "type": "query", "datasource": DS,
         "query": {"query": f'label_values(streampulse_job_running{{{S}}}, job_name)', "refId": "job_name"},
         "definition": f'label_values(streampulse_job_running{{{S}}}, job_name)',
         "refresh": 2, "multi": True, "includeAll": True, "allValue": ".+", "current": {}, "sort": 1},
        *extra,
    ]}

class Board:
    def __init__(self):
        self.panels = []
        self.y = 0
        self.x = 0
        self.rowh = 0
        self.ids = itertools.count(1)

    def row(self, title):
        self._newline()
        self.panels.append({"id": next(self.ids), "type": "row", "title": title, "collapsed": False,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []})
        self.y += 1

    def _newline(self):
        if self.x:
            self.y += self.rowh
            self.x = 0
            self.rowh = 0

    def _place(self, w, h):
        if self.x + w > 24:
            self._newline()
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.rowh = max(self.rowh, h)
        return pos

    def panel(self, ptype, title, desc, targets, unit="short", w=12, h=8, **extra):
        refs = iter("ABCDEFGHIJ")
        p = {"id": next(self.ids), "type": ptype, "title": title, "description": desc,
             "datasource": DS, "gridPos": self._place(w, h),
             "targets": [dict({"datasource": DS, "refId": next(refs), "editorMode": "code",
                               "range": True}, **t) for t in targets],
             "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
             "options": {}}
        if ptype == "timeseries":
            p["fieldConfig"]["defaults"]["custom"] = {"drawStyle": "line", "lineWidth": 1,
                                                      "fillOpacity": 10, "showPoints": "never"}
            p["options"] = {"legend": {"displayMode": "table", "placement": "bottom",
                                       "calcs": ["mean", "max", "lastNotNull"]},
                            "tooltip": {"mode": "multi", "sort": "desc"}}
        if ptype == "stat":
            p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                            "colorMode": "value", "graphMode": "area", "textMode": "auto"}
        for k, v in extra.items():
            if k == "defaults":
                p["fieldConfig"]["defaults"].update(v)
            else:
                p[k] = v
        self.panels.append(p)
        return p

    def ts(self, title, desc, targets, unit="short", **kw):
        return self.panel("timeseries", title, desc, targets, unit, **kw)

    def stat(self, title, desc, expr, unit="short", w=4, h=4, thresholds=None, mappings=None,
             legend="{{instance}}", **kw):
        d = {}
        if thresholds:
            d["thresholds"] = {"mode": "absolute", "steps": thresholds}
            d["color"] = {"mode": "thresholds"}
        if mappings:
            d["mappings"] = mappings
        t = {"expr": expr, "legendFormat": legend, "instant": True, "range": False}
        return self.panel("stat", title, desc, [t], unit, w=w, h=h, defaults=d, **kw)

    def dashboard(self, uid, title, desc, tags, links=()):
        return {
            "uid": uid, "title": title, "description": desc, "tags": tags,
            "editable": True, "graphTooltip": 1, "schemaVersion": 39, "version": 1,
            "time": {"from": "now-1h", "to": "now"}, "refresh": "30s", "timezone": "",
            "fiscalYearStartMonth": 0, "liveNow": False, "weekStart": "",
            "timepicker": {}, "annotations": {"list": [{
                "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts", "type": "dashboard"}]},
            "links": list(links), "templating": templating(), "panels": self.panels,
        }

def q(expr, legend):
    return {"expr": expr, "legendFormat": legend}

def quantiles(metric, by, legend_prefix, qs=(0.5, 0.9, 0.99), sel=S):
    grp = ", ".join(by + ["le"])
    return [q(f'histogram_quantile({x}, sum by ({grp}) (rate({metric}_bucket{{{sel}}}[{RI}])))',
              f"p{int(x * 100)} {legend_prefix}") for x in qs]

GREEN = {"color": "green", "value": None}

# ---------------------------------------------------------------- overview
b = Board()
b.row("Overview")
b.stat("Up", "Prometheus reached the metrics port at the last scrape (1 = up).",
       f'up{{{S}}}', w=3, thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}])
b.stat("Uptime", "Seconds since the process started (streampulse_start_time_seconds).",
       f'time() - streampulse_start_time_seconds{{{S}}}', unit="s", w=3)
b.stat("Accepted events/s", "Events durably appended to the log, per second.",
       f'sum by (instance) (rate(streampulse_events_accepted_total{{{S}}}[{RI}]))', unit="ops", w=4)
b.stat("Rejected share", "Events rejected by validation / events received.",
       f'sum by (instance) (rate(streampulse_events_rejected_total{{{S}}}[{RI}])) / sum by (instance) (rate(streampulse_events_received_total{{{S}}}[{RI}]))',
       unit="percentunit", w=3, thresholds=[GREEN, {"color": "orange", "value": 0.01}, {"color": "red", "value": 0.05}])
b.stat("Consumer lag", "Records in the log not yet processed by the job, all partitions.",
       f'sum by (instance, job_name) (streampulse_consumer_lag_records{{{J}}})', unit="short", w=4,
       legend="{{job_name}} {{instance}}",
       thresholds=[GREEN, {"color": "orange", "value": 10000}, {"color": "red", "value": 100000}])
b.stat("Last checkpoint age", "Seconds since the job's last checkpoint completed.",
       f'streampulse_checkpoint_last_age_seconds{{{J}}}', unit="s", w=4, legend="{{job_name}} {{instance}}",
       thresholds=[GREEN, {"color": "orange", "value": 60}, {"color": "red", "value": 300}])
b.stat("Version", "streampulse_build_info.", f'streampulse_build_info{{{S}}}', w=3,
       options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "/^version$/", "values": False},
                "colorMode": "none", "graphMode": "none", "textMode": "value"},
       transformations=[{"id": "labelsToFields", "options": {}}])
b.stat("Jobs", "The process's jobs (the config file's and those submitted with POST /jobs): running, or stopped (DELETE /jobs/{id}, or stopped before the process started).",
       f'streampulse_job_running{{{J}}}', w=24, h=3, legend="{{job_name}} {{instance}}",
       thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}],
       mappings=[{"type": "value", "options": {"0": {"text": "stopped", "index": 0},
                                               "1": {"text": "running", "index": 1}}}])

b.row("Throughput")
b.ts("Events received, accepted, duplicate", "Per second. received = accepted + rejected + duplicate (+ events of requests answered 503).", [
    q(f'sum by (instance) (rate(streampulse_events_received_total{{{S}}}[{RI}]))', "received {{instance}}"),
    q(f'sum by (instance) (rate(streampulse_events_accepted_total{{{S}}}[{RI}]))', "accepted {{instance}}"),
    q(f'sum by (instance) (rate(streampulse_events_duplicate_total{{{S}}}[{RI}]))', "duplicate {{instance}}"),
], unit="ops")
b.ts("Events rejected by reason", "Per second, by validation failure.", [
    q(f'sum by (reason) (rate(streampulse_events_rejected_total{{{S}}}[{RI}]))', "{{reason}}"),
], unit="ops")
b.ts("Records processed per partition", "Log records (events and idle-flush markers) processed by each partition's worker, per second; replays included.", [
    q(f'sum by (instance, job_name, partition) (rate(streampulse_records_processed_total{{{J}}}[{RI}]))', "{{instance}} {{job_name}} p{{partition}}"),
], unit="ops")
b.ts("Window results emitted", "Per second, by window and kind (final: first emission; update: re-emission caused by an event within allowed_lateness).", [
    q(f'sum by (job_name, window, kind) (rate(streampulse_window_results_total{{{J}}}[{RI}]))', "{{job_name}} {{window}} {{kind}}"),
], unit="ops")

b.row("Latency")
b.ts("Window emit delay", "Wall-clock time of a window's first emission minus the window's end. A few seconds (max_out_of_orderness) is normal; replayed old data lands in +Inf.",
     quantiles("streampulse_window_emit_delay_seconds", ["job_name", "window"], "{{job_name}} {{window}}", sel=J), unit="s")
b.ts("API request duration by route", "p50 and p99 of API requests, per matched route.",
     quantiles("streampulse_http_request_duration_seconds", ["route"], "{{route}}", qs=(0.5, 0.99)), unit="s")
b.panel("heatmap", "Window emit delay distribution", "Window first emissions per emit-delay bucket.", [
    {"expr": f'sum by (le) (increase(streampulse_window_emit_delay_seconds_bucket{{{J}}}[{RI}]))',
     "legendFormat": "{{le}}", "format": "heatmap"},
], unit="s", options={"calculate": False, "yAxis": {"unit": "s"}, "cellGap": 1,
                      "color": {"mode": "scheme", "scheme": "Oranges", "exponent": 0.5, "steps": 64},
                      "tooltip": {"show": True, "yHistogram": True}})
b.ts("Checkpoint duration", "Snapshots, store flush and durable write of one checkpoint.",
     quantiles("streampulse_checkpoint_duration_seconds", ["job_name"], "{{job_name}}", qs=(0.5, 0.99), sel=J), unit="s")
b.ts("Result publish time", "From the start of a batch that fired windows to its results being in the store and on the WebSocket.",
     quantiles("streampulse_result_publish_seconds", ["job_name"], "{{job_name}}", qs=(0.5, 0.99), sel=J), unit="s")

b.row("Lateness and watermarks")
b.ts("Late events by window", "Events later than the window's end + allowed_lateness, per second (sent to the late output once per window they missed).", [
    q(f'sum by (job_name, window) (rate(streampulse_late_events_total{{{J}}}[{RI}]))', "{{job_name}} {{window}}"),
], unit="ops")
b.ts("Updates within allowed lateness", "Re-emissions caused by late events still within allowed_lateness, per second.", [
    q(f'sum by (job_name, window) (rate(streampulse_window_results_total{{{J}, kind="update"}}[{RI}]))', "{{job_name}} {{window}}"),
], unit="ops")
b.ts("Watermark lag per partition", "Wall clock minus the partition's watermark (negative when event times run ahead of the clock).", [
    q(f'streampulse_watermark_lag_seconds{{{J}}}', "{{instance}} {{job_name}} p{{partition}}"),
], unit="s")
b.ts("Consumer lag per partition", "Records in the log not yet processed by the partition's worker.", [
    q(f'streampulse_consumer_lag_records{{{J}}}', "{{instance}} {{job_name}} p{{partition}}"),
], unit="short")
b.ts("Watermark per partition", "The partition's event-time watermark.", [
    q(f'streampulse_watermark_seconds{{{J}}} * 1000', "{{instance}} {{job_name}} p{{partition}}"),
], unit="dateTimeAsIso")
b.ts("Idle flushes", "Idle flushes that closed the windows of a silent partition, per second.", [
    q(f'sum by (instance, job_name, partition) (rate(streampulse_idle_flushes_total{{{J}}}[{RI}]))', "{{instance}} {{job_name}} p{{partition}}"),
], unit="ops")
b.ts("Records skipped or lost", "Log records that could not be decoded and were stepped over, and records a Kafka partition no longer held when it resumed from its checkpoint (kafka.on_data_loss: skip), per partition, over the dashboard's range. Anything above zero deserves a look at the worker's log.", [
    q(f'sum by (instance, job_name, partition) (increase(streampulse_skipped_records_total{{{J}}}[$__range]))', "skipped {{instance}} {{job_name}} p{{partition}}"),
    q(f'sum by (instance, job_name, partition) (increase(streampulse_lost_records_total{{{J}}}[$__range]))', "lost {{instance}} {{job_name}} p{{partition}}"),
], unit="short")

b.row("Checkpoints")
b.ts("Checkpoints completed and failed", "Checkpoints and savepoints per minute.", [
    q(f'sum by (instance, job_name) (rate(streampulse_checkpoints_completed_total{{{J}}}[{RI}])) * 60', "completed {{job_name}} {{instance}}"),
    q(f'sum by (instance, job_name) (rate(streampulse_checkpoints_failed_total{{{J}}}[{RI}])) * 60', "failed {{job_name}} {{instance}}"),
], unit="short", w=8)
b.ts("Last checkpoint age", "Seconds since the last checkpoint completed (alert StreamPulseCheckpointStale above 300 s).", [
    q(f'streampulse_checkpoint_last_age_seconds{{{J}}}', "{{job_name}} {{instance}}"),
], unit="s", w=8)
b.ts("Last checkpoint size", "The job's serialized state in the last completed checkpoint.", [
    q(f'streampulse_checkpoint_last_size_bytes{{{J}}}', "{{job_name}} {{instance}}"),
], unit="bytes", w=8)

b.row("State")
b.ts("Open windows per partition", "Windows and sessions holding state.", [
    q(f'streampulse_open_windows{{{J}}}', "{{instance}} {{job_name}} p{{partition}}"),
], unit="short")
b.ts("Log size", "Payload bytes retained by the embedded log.", [
    q(f'streampulse_log_size_bytes{{{S}}}', "{{instance}}"),
], unit="bytes")
b.ts("Operator state per partition", "Encoded bytes of each partition's windows and detector state at its last checkpoint: what a restore reads and what moves with a partition.", [
    q(f'streampulse_state_bytes{{{J}}}', "{{instance}} {{job_name}} p{{partition}}"),
], unit="bytes")
b.ts("Result store write failures", "Failed attempts to write outputs to the result store (disk full, Cassandra unreachable or timing out), by job: each batch is retried until written, and /readyz answers 503 meanwhile.", [
    q(f'sum by (instance, job_name) (increase(streampulse_store_errors_total{{{J}}}[{RI}]))', "{{instance}} {{job_name}}"),
], unit="short")
b.ts("Store retention", "Stored rows deleted by retention (store.retention) per minute, by table, and failed sweeps.", [
    q(f'sum by (instance, table) (rate(streampulse_store_rows_expired_total{{{S}}}[{RI}])) * 60', "{{instance}} {{table}}"),
    q(f'sum by (instance) (increase(streampulse_store_retention_sweeps_total{{{S}, outcome="failed"}}[{RI}]))', "{{instance}} failed sweeps"),
], unit="short")

b.row("Alerts, WebSocket and webhooks")
b.ts("Alert transitions", "Alert transitions emitted per minute, by detector, severity and state.", [
    q(f'sum by (job_name, detector, severity, state) (rate(streampulse_alert_transitions_total{{{J}}}[{RI}])) * 60', "{{job_name}} {{detector}} {{severity}} {{state}}"),
], unit="short", w=8)
b.ts("WebSocket", "Clients subscribed to the live feed, and live-feed messages they missed by reading too slowly (per second).", [
    q(f'sum by (instance, job_name) (streampulse_websocket_clients{{{J}}})', "clients {{job_name}} {{instance}}"),
    q(f'sum by (instance, job_name) (rate(streampulse_websocket_lagged_messages_total{{{J}}}[{RI}]))', "lagged msg/s {{job_name}} {{instance}}"),
], unit="short", w=8)
b.ts("Webhooks", "Alert transitions per minute: delivered, failed attempts, given up, dropped.", [
    q(f'sum by (job_name, webhook) (rate(streampulse_webhook_deliveries_total{{{J}}}[{RI}])) * 60', "delivered {{job_name}} {{webhook}}"),
    q(f'sum by (job_name, webhook) (rate(streampulse_webhook_failed_attempts_total{{{J}}}[{RI}])) * 60', "failed attempts {{job_name}} {{webhook}}"),
    q(f'sum by (job_name, webhook) (rate(streampulse_webhook_given_up_total{{{J}}}[{RI}])) * 60', "given up {{job_name}} {{webhook}}"),
    q(f'sum by (job_name, webhook, reason) (rate(streampulse_webhook_dropped_total{{{J}}}[{RI}])) * 60', "dropped {{reason}} {{job_name}} {{webhook}}"),
], unit="short", w=8)

overview = b.dashboard("streampulse-overview", "StreamPulse / Overview",
    "Ingest throughput, latency, lateness and watermarks, checkpoints, state, alerts, WebSocket and webhooks. Metrics: docs/instrumentation.md.",
    ["streampulse"], links=[{"type": "dashboards", "tags": ["streampulse"], "asDropdown": False,
                             "title": "StreamPulse", "includeVars": True, "keepTime": True}])

# ---------------------------------------------------------------- API and alerts
b = Board()
b.row("API")
b.ts("Requests by route and status", "API requests per second.", [
    q(f'sum by (route, method, status) (rate(streampulse_http_request_duration_seconds_count{{{S}}}[{RI}]))', "{{method}} {{route}} {{status}}"),
], unit="reqps")
b.ts("Error share", "Share of API requests answered 5xx, and 4xx, over all requests.", [
    q(f'(sum(rate(streampulse_http_request_duration_seconds_count{{{S}, status=~"5.."}}[{RI}])) or vector(0)) / sum(rate(streampulse_http_request_duration_seconds_count{{{S}}}[{RI}]))', "5xx"),
    q(f'(sum(rate(streampulse_http_request_duration_seconds_count{{{S}, status=~"4.."}}[{RI}])) or vector(0)) / sum(rate(streampulse_http_request_duration_seconds_count{{{S}}}[{RI}]))', "4xx"),
], unit="percentunit")
b.ts("p50 by route", "Median API request duration per matched route.",
     quantiles("streampulse_http_request_duration_seconds", ["route"], "{{route}}", qs=(0.5,)), unit="s")
b.ts("p99 by route", "99th percentile API request duration per matched route.",
     quantiles("streampulse_http_request_duration_seconds", ["route"], "{{route}}", qs=(0.99,)), unit="s")
b.ts("Ingest (POST /events) duration", "Ingest requests include validation and the log's group commit (fsync).",
     [q(f'histogram_quantile({x}, sum by (le) (rate(streampulse_http_request_duration_seconds_bucket{{{S}, route="/events", method="POST"}}[{RI}])))', f"p{int(x*100)}")
      for x in (0.5, 0.9, 0.99)], unit="s")
b.ts("Mean duration by route", "Sum of durations / count, per route.", [
    q(f'sum by (route) (rate(streampulse_http_request_duration_seconds_sum{{{S}}}[{RI}])) / sum by (route) (rate(streampulse_http_request_duration_seconds_count{{{S}}}[{RI}]))', "{{route}}"),
], unit="s")

b.row("Alerts")
b.ts("Transitions by detector, severity and state", "Alert transitions emitted per minute.", [
    q(f'sum by (job_name, detector, severity, state) (rate(streampulse_alert_transitions_total{{{J}}}[{RI}])) * 60', "{{job_name}} {{detector}} {{severity}} {{state}}"),
], unit="short")
b.panel("bargauge", "Transitions in the time range", "Alert transitions over the dashboard's time range, by detector, severity and state.", [
    {"expr": f'sum by (job_name, detector, severity, state) (increase(streampulse_alert_transitions_total{{{J}}}[$__range]))',
     "legendFormat": "{{job_name}} {{detector}} {{severity}} {{state}}", "instant": True, "range": False},
], unit="short", options={"displayMode": "basic", "orientation": "horizontal",
                          "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}})
b.ts("Firing transitions by severity", "Alerts fired (or escalated, or re-opened) per minute.", [
    q(f'sum by (job_name, severity) (rate(streampulse_alert_transitions_total{{{J}, state="firing"}}[{RI}])) * 60', "{{job_name}} {{severity}}"),
], unit="short")

b.row("Webhooks and WebSocket")
b.ts("Webhook deliveries and failures", "Per minute, by webhook.", [
    q(f'sum by (job_name, webhook) (rate(streampulse_webhook_deliveries_total{{{J}}}[{RI}])) * 60', "delivered {{job_name}} {{webhook}}"),
    q(f'sum by (job_name, webhook) (rate(streampulse_webhook_failed_attempts_total{{{J}}}[{RI}])) * 60', "failed attempts {{job_name}} {{webhook}}"),
    q(f'sum by (job_name, webhook) (rate(streampulse_webhook_given_up_total{{{J}}}[{RI}])) * 60', "given up {{job_name}} {{webhook}}"),
    q(f'sum by (job_name, webhook, reason) (rate(streampulse_webhook_dropped_total{{{J}}}[{RI}])) * 60', "dropped {{reason}} {{job_name}} {{webhook}}"),
], unit="short")
b.ts("Webhook queue", "Transitions waiting in each webhook's queue.", [
    q(f'streampulse_webhook_queued_transitions{{{J}}}', "{{job_name}} {{webhook}}"),
], unit="short")
b.ts("WebSocket clients", "Clients subscribed to the live feed.", [
    q(f'streampulse_websocket_clients{{{J}}}', "{{job_name}} {{instance}}"),
], unit="short")
b.ts("WebSocket lagged messages", "Live-feed messages clients missed by reading too slowly, per second.", [
    q(f'rate(streampulse_websocket_lagged_messages_total{{{J}}}[{RI}])', "{{job_name}} {{instance}}"),
], unit="ops")

api = b.dashboard("streampulse-api-alerts", "StreamPulse / API and alerts",
    "API request rates, errors and durations by route; alert transitions; webhook deliveries; WebSocket clients. Metrics: docs/instrumentation.md.",
    ["streampulse"], links=overview["links"])

for name, d in [("streampulse-overview", overview), ("streampulse-api-alerts", api)]:
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboards", f"{name}.json")
    with open(out, "w") as f:
        json.dump(d, f, indent=2)
        f.write("\n")
