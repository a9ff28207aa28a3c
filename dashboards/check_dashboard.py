"""Offline checks of dashboards/ that promtool does not make (run by dashboards/test).

- The Grafana dashboard: JSON with schemaVersion >= 36, a Prometheus datasource variable
  and the `instance` and `route` query variables; every panel has a unique id, fits the
  24-column grid, uses the datasource variable, and has at least one target whose `expr`
  is non-empty, has balanced brackets and names only defined variables.
- The alert rules: every alert has severity, summary, description and a runbook_url into
  docs/runbooks.md; every alert has, in alerts_test.yml, at least one evaluation where it
  fires and one where it does not.

It never talks to a server; the live check of each query is the gateway's observability
integration test. Exits 1 naming every problem found.
"""

import json
import re
import sys

import yaml

BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__range", "__all"}


def check_dashboard(path, problems):
    with open(path, encoding="utf-8") as handle:
        dashboard = json.load(handle)
    if dashboard.get("schemaVersion", 0) < 36:
        problems.append(f"{path}: schemaVersion {dashboard.get('schemaVersion')} < 36")
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    datasource = variables.get("datasource", {})
    if datasource.get("type") != "datasource" or datasource.get("query") != "prometheus":
        problems.append(f"{path}: no Prometheus datasource variable named datasource")
    for name in ("instance", "route"):
        variable = variables.get(name, {})
        query = variable.get("query", {})
        query = query.get("query", "") if isinstance(query, dict) else query
        if variable.get("type") != "query" or not query.startswith("label_values("):
            problems.append(f"{path}: variable {name} is not a label_values query")
    ids = set()
    graphs = 0
    for panel in dashboard.get("panels", []):
        title = panel.get("title", "?")
        if panel.get("id") in ids:
            problems.append(f"{path}: panel id {panel.get('id')} repeated ({title})")
        ids.add(panel.get("id"))
        grid = panel.get("gridPos", {})
        if grid.get("x", 0) + grid.get("w", 0) > 24:
            problems.append(f"{path}: panel {title!r} is wider than the grid")
        if panel.get("type") == "row":
            continue
        graphs += 1
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"{path}: panel {title!r} does not use the datasource variable")
        targets = panel.get("targets", [])
        if not targets:
            problems.append(f"{path}: panel {title!r} has no query")
        for target in targets:
            check_expr(path, title, target.get("expr", ""), variables, problems)
    if graphs < 10:
        problems.append(f"{path}: only {graphs} panels")


def check_expr(path, title, expr, variables, problems):
    if not expr.strip():
        problems.append(f"{path}: panel {title!r} has an empty query")
        return
    for name in re.findall(r"\$\{?(\w+)", expr):
        if name not in variables and name not in BUILTIN_VARIABLES:
            problems.append(f"{path}: panel {title!r} uses undefined variable ${name}")
    unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    for opening, closing in ("()", "{}", "[]"):
        if unquoted.count(opening) != unquoted.count(closing):
            problems.append(f"{path}: panel {title!r}: unbalanced {opening}{closing} in {expr}")


def check_alerts(alerts_path, tests_path, problems):
    with open(alerts_path, encoding="utf-8") as handle:
        groups = yaml.safe_load(handle)["groups"]
    alerts = [rule for group in groups for rule in group["rules"] if "alert" in rule]
    with open(tests_path, encoding="utf-8") as handle:
        tests = yaml.safe_load(handle)["tests"]
    fires, quiet = set(), set()
    for test in tests:
        for case in test.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    for rule in alerts:
        name = rule["alert"]
        if rule.get("labels", {}).get("severity") not in ("page", "ticket"):
            problems.append(f"{alerts_path}: {name} has no severity page or ticket")
        annotations = rule.get("annotations", {})
        for key in ("summary", "description"):
            if not annotations.get(key):
                problems.append(f"{alerts_path}: {name} has no {key}")
        if not annotations.get("runbook_url", "").startswith("docs/runbooks.md#"):
            problems.append(f"{alerts_path}: {name}'s runbook_url is not docs/runbooks.md#...")
        if name not in fires:
            problems.append(f"{tests_path}: no case where {name} fires")
        if name not in quiet:
            problems.append(f"{tests_path}: no case where {name} stays quiet")
    if not alerts:
        problems.append(f"{alerts_path}: no alert")


def main():
    dashboard, alerts, tests = sys.argv[1:4]
    problems = []
    check_dashboard(dashboard, problems)
    check_alerts(alerts, tests, problems)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"{dashboard}, {alerts}, {tests}: checked")


if __name__ == "__main__":
    main()
