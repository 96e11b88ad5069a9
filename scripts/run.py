"""Start the four services as separate processes and keep them running (`make run`).

Applies each service's migrations (the services do it at start-up), waits until
every ``/healthz`` answers, prints the URL of the training page, and stops all
four cleanly on Ctrl-C. The same :class:`Cluster` starts real processes for the
end-to-end and browser tests.

Ports: GATEWAY_PORT (8000), OPTIMIZER_PORT (8001), EVOLUTION_PORT (8002),
REWARD_PORT (8003). Every other setting is read by the services themselves.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("optimizer", "evolution", "reward", "gateway")
DEFAULT_PORTS = {"gateway": 8000, "optimizer": 8001, "evolution": 8002, "reward": 8003}


def ports_from_env(env: Mapping[str, str]) -> dict[str, int]:
    return {name: int(env.get(f"{name.upper()}_PORT", port))
            for name, port in DEFAULT_PORTS.items()}


@dataclass
class Cluster:
    """The four services as child processes on ``host`` with the given ports."""

    ports: dict[str, int]
    host: str = "127.0.0.1"
    env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    own_process_group: bool = False
    """Start each service in its own process group, so :meth:`kill` also takes the
    worker processes it spawned (the optimizer's fitting pool), as a container kill does."""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://{self.host}:{self.ports[service]}"

    def service_env(self) -> dict[str, str]:
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        for name in ("optimizer", "evolution", "reward"):
            env[f"GATEWAY_{name.upper()}_URL"] = self.url(name)
        return env

    def users(self, *args: str) -> str:
        """Run ``python -m scripts.users ARGS`` against this cluster's gateway database."""
        done = subprocess.run([sys.executable, "-m", "scripts.users", *args], cwd=REPO_ROOT,
                              env=self.service_env(), capture_output=True, text=True, check=True)
        return done.stdout.strip()

    def start(self, service: str) -> None:
        command = [sys.executable, "-m", "uvicorn", f"services.{service}.main:app",
                   "--host", self.host, "--port", str(self.ports[service]),
                   "--log-level", "warning", "--timeout-graceful-shutdown", "5"]
        output = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            output = open(self.log_dir / f"{service}.log", "ab")  # noqa: SIM115
        env = self.service_env()
        env[f"{service.upper()}_PORT"] = str(self.ports[service])
        self.processes[service] = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=self.own_process_group)

    def start_all(self) -> None:
        for service in SERVICES:
            self.start(service)

    def healthy(self, service: str) -> bool:
        try:
            with urllib.request.urlopen(self.url(service) + "/healthz", timeout=2) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_healthy(self, services: tuple[str, ...] = SERVICES, deadline_s: float = 60) -> None:
        """Poll ``/healthz`` until every service answers or the deadline passes."""
        deadline = time.monotonic() + deadline_s
        waiting = set(services)
        while waiting:
            for service in list(waiting):
                process = self.processes.get(service)
                if process is not None and process.poll() is not None:
                    raise RuntimeError(f"{service} exited with code {process.returncode}"
                                       + self._log_hint(service))
                if self.healthy(service):
                    waiting.discard(service)
            if waiting and time.monotonic() > deadline:
                raise TimeoutError(f"not healthy after {deadline_s}s: {sorted(waiting)}"
                                   + "".join(self._log_hint(s) for s in waiting))
            if waiting:
                time.sleep(0.2)

    def _log_hint(self, service: str) -> str:
        if self.log_dir is None:
            return ""
        log = self.log_dir / f"{service}.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        return f"\n--- {service} log ---\n{tail}"

    def stop(self, service: str, timeout: float = 10) -> None:
        process = self.processes.pop(service, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if self.own_process_group:  # whatever it spawned and left behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    def kill(self, service: str) -> None:
        """SIGKILL a service (with its process group when it has its own): no clean-up runs."""
        process = self.processes.pop(service, None)
        if process is None or process.poll() is not None:
            return
        if self.own_process_group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.wait()

    def stop_all(self) -> None:
        for service in reversed(SERVICES):
            self.stop(service)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("AFINADOR_HOST", "127.0.0.1"))
    args = parser.parse_args(argv)
    cluster = Cluster(ports=ports_from_env(os.environ), host=args.host)
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print("Afinador: starting optimizer, evolution, reward and gateway…", flush=True)
    try:
        cluster.start_all()
        cluster.wait_healthy(deadline_s=120)
        print("\nAll four services are up:", flush=True)
        for service in SERVICES:
            print(f"  {service:<10} {cluster.url(service)}  (docs: {cluster.url(service)}/docs)")
        print(f"\n  ➜ Training page: {cluster.url('gateway')}/train\n\nPress Ctrl-C to stop.",
              flush=True)
        while not stopping:
            for service, process in list(cluster.processes.items()):
                if process.poll() is not None:
                    print(f"{service} stopped unexpectedly (exit {process.returncode}); "
                          "stopping the others.", file=sys.stderr, flush=True)
                    stopping = True
            time.sleep(0.5)
    except (RuntimeError, TimeoutError) as exc:
        print(f"Could not start Afinador: {exc}", file=sys.stderr)
        return 1
    finally:
        print("Stopping…", flush=True)
        cluster.stop_all()
        print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
