"""Checks docker-compose.yml's structure against scripts/stack's topology (no Docker
engine needed): the same services, the gateways built from the Dockerfile with the
image's contract (port 8080, data dir, non-root), every long-running service with a
health check, every depends_on naming a service with a condition it can meet, the
balancer and Prometheus rendered from the same templates as scripts/stack with every
placeholder filled, and only the balancer and Prometheus published, on localhost.
Prints what it checked; exits 1 naming each problem.
Usage: python3 check_compose.py REPO
"""

import pathlib
import re
import sys

import yaml

GATEWAYS = ["gateway-1", "gateway-2"]
SERVICES = {"postgres", "redis", "moto", "aws-init", "balancer", "prometheus", *GATEWAYS}
ONE_SHOT = {"aws-init"}
PUBLISHED = {"balancer": "127.0.0.1:8080:8080", "prometheus": "127.0.0.1:9090:9090"}
PLACEHOLDER = re.compile(r"@([A-Z0-9_]+)@")


def placeholders(path: pathlib.Path) -> set:
    """The @NAME@ placeholders of a template's lines other than comments."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    return set(PLACEHOLDER.findall("\n".join(lines)))


def filled(command, names: set) -> set:
    text = " ".join(command) if isinstance(command, list) else str(command)
    return {name for name in names if f"@{name}@" in text}


def check(repo: pathlib.Path) -> list:
    problems = []
    compose = yaml.safe_load((repo / "docker-compose.yml").read_text())
    services = compose.get("services", {})
    if set(services) != SERVICES:
        problems.append(f"services {sorted(services)} != {sorted(SERVICES)}")
        return problems

    dockerfile = (repo / "Dockerfile").read_text()
    for name in GATEWAYS:
        gateway = services[name]
        build = gateway.get("build", {})
        if build.get("context") != "." or f"AS {build.get('target')}" not in dockerfile:
            problems.append(f"{name}: not built from the Dockerfile's gateway stage: {build}")
        env = gateway.get("environment", {})
        expected = {
            "PROTEA_LISTEN": "0.0.0.0:8080",
            "PROTEA_DATA_DIR": "/var/lib/protea",
            "PROTEA_TRUSTED_PROXY_HOPS": "1",
            "PROTEA_SESSIONS_TABLE_CREATE": "true",
        }
        for key, value in expected.items():
            if str(env.get(key)) != value:
                problems.append(f"{name}: {key}={env.get(key)!r}, expected {value!r}")
        for key in ["PROTEA_STORAGE", "PROTEA_KEYS_SECRET", "PROTEA_REDIS_URL", "PROTEA_SESSIONS_TABLE"]:
            if not env.get(key):
                problems.append(f"{name}: {key} is not set")
        if "aws-secretsmanager:" not in str(env.get("PROTEA_KEYS_SECRET")):
            problems.append(f"{name}: the keys document must come from Secrets Manager (moto)")
        drain = int(env.get("PROTEA_DRAIN_TIMEOUT_SECONDS", 25))
        # The drain, then up to 10 s for the audit writer, then 5 s of margin.
        if gateway.get("stop_grace_period") != f"{drain + 15}s":
            problems.append(f"{name}: stop_grace_period must be the drain + 15 s ({drain + 15}s)")
        if gateway.get("ports"):
            problems.append(f"{name}: publishes ports; /metrics must stay on the internal network")
        if "gateway" not in " ".join(gateway.get("healthcheck", {}).get("test", [])):
            problems.append(f"{name}: health check must be `gateway healthcheck` (no curl in the image)")
    if "USER 10001:10001" not in dockerfile or "EXPOSE 8080" not in dockerfile:
        problems.append("Dockerfile: must run as uid 10001 and expose 8080")

    for name, service in services.items():
        if name not in ONE_SHOT and "healthcheck" not in service:
            problems.append(f"{name}: no healthcheck")
        for dependency, condition in (service.get("depends_on") or {}).items():
            if dependency not in services:
                problems.append(f"{name}: depends on unknown service {dependency}")
                continue
            wanted = condition.get("condition")
            if wanted == "service_healthy" and "healthcheck" not in services[dependency]:
                problems.append(f"{name}: waits for {dependency} to be healthy; it has no healthcheck")
            if wanted == "service_completed_successfully" and dependency not in ONE_SHOT:
                problems.append(f"{name}: waits for {dependency} to complete; it is long-running")
            if wanted not in {"service_healthy", "service_completed_successfully"}:
                problems.append(f"{name}: depends on {dependency} without a health condition")
        ports = service.get("ports") or []
        if name in PUBLISHED and ports != [PUBLISHED[name]]:
            problems.append(f"{name}: ports {ports}, expected [{PUBLISHED[name]}]")
        if name not in PUBLISHED and ports:
            problems.append(f"{name}: publishes {ports}; only the balancer and Prometheus may")

    # The same templates as scripts/stack, every placeholder filled in both places.
    stack = (repo / "scripts/stack").read_text()
    for name, template, command_key in [
        ("balancer", "nginx.conf.template", "command"),
        ("prometheus", "prometheus.yml.template", "entrypoint"),
    ]:
        path = repo / "scripts/stack.d" / template
        names = placeholders(path)
        volumes = " ".join(services[name].get("volumes", []))
        if f"./scripts/stack.d/{template}:" not in volumes:
            problems.append(f"{name}: does not mount scripts/stack.d/{template}")
        missing = names - filled(services[name].get(command_key, []), names)
        if missing:
            problems.append(f"{name}: leaves {sorted(missing)} of {template} unfilled")
        missing = names - filled(stack, names)
        if missing:
            problems.append(f"scripts/stack: leaves {sorted(missing)} of {template} unfilled")
        if f"scripts/stack.d/{template}" not in stack:
            problems.append(f"scripts/stack does not render {template}")
    if "./dashboards/prometheus:" not in " ".join(services["prometheus"].get("volumes", [])):
        problems.append("prometheus: does not mount dashboards/prometheus (the alert rules)")

    nginx = (repo / "scripts/stack.d/nginx.conf.template").read_text()
    for needle in ["location /v1/", "location = /livez", "location = /readyz", "non_idempotent", "keepalive "]:
        if needle not in nginx:
            problems.append(f"nginx.conf.template: missing {needle!r}")
    if re.search(r"location[^{]*metrics", nginx):
        problems.append("nginx.conf.template: /metrics must not be proxied")
    return problems


def main() -> int:
    repo = pathlib.Path(sys.argv[1])
    problems = check(repo)
    for problem in problems:
        print(f"docker-compose.yml: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"docker-compose.yml: {len(SERVICES)} services agree with scripts/stack and the Dockerfile")
    return 0


if __name__ == "__main__":
    sys.exit(main())
