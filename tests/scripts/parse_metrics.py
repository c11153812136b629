#!/usr/bin/env python3
"""Parses OpenMetrics text on stdin with the reference parser (prometheus_client) and prints
every sample as one JSON object per line: {"name", "labels", "value", "type"}. Exits non-zero,
with the parser's message, on text the format does not allow."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        print(json.dumps({"name": sample.name, "labels": sample.labels,
                          "value": sample.value, "type": family.type}))
