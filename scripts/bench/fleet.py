#!/usr/bin/env python3
"""Fleet-scale benchmarks of the controller, driven by boltfleet-loadgen (optimized builds).

    python3 scripts/bench/fleet.py steady  --agents 10000 [--duration 180]
    python3 scripts/bench/fleet.py storm   --agents 10000
    python3 scripts/bench/fleet.py rollout --agents 10000 [--job-seconds 10]

Each run starts a fresh controller in a temp dir, samples its RSS and CPU from /proc, and prints
the machine, the commit, the command and the numbers as one JSON object on the last line.
Build first: cargo build --profile profiling -p boltfleet-controller -p boltfleet-tests
"""

import argparse
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
# `profiling` is the release profile with symbols (same code), so that `perf` can be pointed at
# the controller during any scenario.
PROFILE = os.environ.get("BOLTFLEET_PROFILE", "profiling")
RELEASE = os.path.join(TARGET, PROFILE)
TICK = os.sysconf("SC_CLK_TCK")


def binary(name):
    path = os.path.join(RELEASE, name)
    if not os.path.exists(path):
        sys.exit(f"{path} is missing: cargo build --profile {PROFILE} -p boltfleet-controller -p boltfleet-tests")
    return path


def machine():
    cpu = ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1))
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    hard_nofile = subprocess.run(["bash", "-c", "ulimit -Hn"], capture_output=True, text=True).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "nofile_hard": hard_nofile,
        "commit": commit + ("+dirty" if dirty else ""),
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


class Sampler(threading.Thread):
    """Samples a process's RSS and CPU time every `every` seconds."""

    def __init__(self, pid, every=1.0):
        super().__init__(daemon=True)
        self.pid, self.every, self.samples, self.stop = pid, every, [], threading.Event()

    def read(self):
        try:
            stat = open(f"/proc/{self.pid}/stat").read()
            status = open(f"/proc/{self.pid}/status").read()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) * 1024
        hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) * 1024
        return (time.time(), cpu, rss, hwm)

    def run(self):
        while not self.stop.is_set():
            sample = self.read()
            if sample:
                self.samples.append(sample)
            self.stop.wait(self.every)

    def window(self, start, end):
        """CPU % (of one core) and RSS over [start, end] (unix seconds)."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return {}
        (t0, c0, _, _), (t1, c1, rss, hwm) = inside[0], inside[-1]
        return {
            "cpu_pct": round(100 * (c1 - c0) / (t1 - t0), 1),
            "rss_mib": round(rss / 2**20, 1),
            "rss_max_mib": round(max(s[2] for s in inside) / 2**20, 1),
            "peak_rss_mib": round(hwm / 2**20, 1),
            "window_s": round(t1 - t0, 1),
        }


class Controller:
    def __init__(self, base):
        self.dir = os.path.join(base, "controller")
        self.log_n = 0
        out = subprocess.run([binary("boltfleet-controller"), "init", "--data-dir", self.dir,
                              "--san", "127.0.0.1"], capture_output=True, text=True, check=True)
        self.pin = out.stdout.strip()
        subprocess.run([binary("boltfleet-controller"), "operator-cert", "--data-dir", self.dir,
                        "--name", "bench", "--out", os.path.join(self.dir, "operator")],
                       capture_output=True, check=True)
        self.addr = "127.0.0.1:0"
        self.proc = None

    def serve(self):
        addr_file = os.path.join(self.dir, "listen.addr")
        if os.path.exists(addr_file):
            os.remove(addr_file)
        log = open(os.path.join(self.dir, f"serve-{self.log_n}.log"), "w")
        self.log_n += 1
        self.started_at = time.time()
        # Every simulated agent connects from 127.0.0.1: lift the per-address cap (1,024 by
        # default, meant for one NAT address of real hosts) above the fleet simulated.
        config = os.path.join(self.dir, "controller.toml")
        with open(config, "w") as f:
            f.write(f'data_dir = "{self.dir}"\nlisten = "{self.addr}"\n\n'
                    "[limits]\nmax_connections_per_address = 65536\n")
        self.proc = subprocess.Popen([binary("boltfleet-controller"), "serve", "--config", config],
                                     stdout=log, stderr=log)
        while not os.path.exists(addr_file):
            if self.proc.poll() is not None:
                sys.exit(f"controller exited; see {log.name}")
            time.sleep(0.05)
        self.ready_at = time.time()
        self.addr = open(addr_file).read().strip()
        self.sampler = Sampler(self.proc.pid)
        self.sampler.start()

    def stop(self, timeout=60):
        self.sampler.stop.set()
        self.proc.send_signal(signal.SIGTERM)
        began = time.time()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        return time.time() - began

    def cli(self, *args):
        ops = os.path.join(self.dir, "operator")
        env = dict(os.environ, BOLTFLEET_CONTROLLER=f"https://{self.addr}",
                   BOLTFLEET_CA=os.path.join(ops, "ca.crt"),
                   BOLTFLEET_CERT=os.path.join(ops, "bench.crt"),
                   BOLTFLEET_KEY=os.path.join(ops, "bench.key"))
        out = subprocess.run([binary("boltfleet"), *args], capture_output=True, text=True, env=env)
        if out.returncode != 0:
            raise RuntimeError(f"boltfleet {args}: {out.stderr}")
        return out.stdout


class Loadgen:
    """boltfleet-loadgen in the background; its progress lines are parsed as they come."""

    def __init__(self, ctl, agents, duration, extra=()):
        cmd = [binary("boltfleet-loadgen"), "--data-dir", ctl.dir, "--agents", str(agents),
               "--duration", duration, "--progress", "1s", *extra]
        self.command = " ".join(cmd)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.connected, self.lines, self.summary = 0, [], None
        threading.Thread(target=self._stderr, daemon=True).start()

    def _stderr(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())
            m = re.search(r"connected=(\d+)", line)
            if m:
                self.connected = int(m.group(1))

    def wait_connected(self, n, timeout):
        deadline = time.time() + timeout
        while self.connected < n:
            if self.proc.poll() is not None:
                sys.exit("loadgen exited early:\n" + "\n".join(self.lines[-20:]))
            if time.time() > deadline:
                return False
            time.sleep(0.2)
        return True

    def finish(self, stop=False):
        if stop:
            self.proc.send_signal(signal.SIGTERM)
        out = self.proc.stdout.read()
        self.proc.wait()
        last = out.strip().splitlines()[-1] if out.strip() else "{}"
        self.summary = json.loads(last)
        return self.summary


def steady(args, base):
    ctl = Controller(base)
    ctl.serve()
    lg = Loadgen(ctl, args.agents, f"{args.duration}s", ["--report-interval", "30s"])
    lg.wait_connected(args.agents, args.duration)
    all_connected = time.time()
    summary = lg.finish()
    end = time.time()
    # Steady window: from every agent connected (plus one interval, so that the first reports of
    # the ramp are behind us) to the end.
    window = ctl.sampler.window(all_connected + 30, end)
    ctl.stop()
    return {
        "agents": args.agents, "report_interval_s": 30, "loadgen": summary,
        "controller_steady": window,
        "targets_at_50k": {"p99_ms": "< 50", "rss": "< 2 GiB"},
        "command": lg.command,
    }


def storm(args, base):
    ctl = Controller(base)
    ctl.serve()
    lg = Loadgen(ctl, args.agents, "1h", ["--report-interval", "30s",
                                          "--max-connecting", str(args.max_connecting)])
    if not lg.wait_connected(args.agents, 600):
        sys.exit(f"only {lg.connected} of {args.agents} connected")
    time.sleep(10)
    before = ctl.sampler.window(0, time.time())
    shutdown_s = ctl.stop()
    ctl.serve()
    restarted, ready = ctl.started_at, ctl.ready_at
    reconnected = lg.wait_connected(args.agents, 600)
    # The last reconnection is stamped by the load generator; wait a little to be sure nothing
    # is still trickling in, then stop it.
    time.sleep(5)
    summary = lg.finish(stop=True)
    after = ctl.sampler.window(restarted, time.time())
    ctl.stop()
    return {
        "agents": args.agents,
        "all_reconnected": reconnected and summary.get("connected") == args.agents,
        "shutdown_s": shutdown_s,
        "restart_to_listening_s": round(ready - restarted, 2),
        "storm_s": round(summary["last_connect_unix_ms"] / 1000 - restarted, 1),
        "target_s": "< 60",
        "loadgen": summary, "controller_before": before, "controller_after": after,
        "command": lg.command,
    }


def ideal_makespan(n, waves, max_parallel, job_s):
    """Sum over waves of the rounds of max_parallel equal jobs each wave needs (soak 0)."""
    total, done = 0.0, 0
    for w in waves:
        target = math.ceil(n * w / 100)
        total += math.ceil((target - done) / max_parallel) * job_s
        done = target
    return total


def rollout(args, base):
    ctl = Controller(base)
    ctl.serve()
    lg = Loadgen(ctl, args.agents, "2h", ["--report-interval", "30s", "--job-seconds", str(args.job_seconds)])
    if not lg.wait_connected(args.agents, 600):
        sys.exit(f"only {lg.connected} of {args.agents} connected")
    time.sleep(35)  # one report interval: every host has reported its version
    idle = ctl.sampler.window(time.time() - 20, time.time())
    spec = ["--to", "4.9.1", "--waves", "1%,10%,100%", "--max-parallel", "500",
            "--max-failures", "0", "--soak", "0s"]
    started = time.time()
    rid = ctl.cli("rollout", "start", *spec).strip()
    while True:
        status = json.loads(ctl.cli("rollout", "status", rid, "--format", "json"))
        if status["state"] != "running":
            break
        time.sleep(1)
    finished = time.time()
    during = ctl.sampler.window(started, finished)
    summary = lg.finish(stop=True)
    ctl.stop()
    ideal = ideal_makespan(args.agents, [1, 10, 100], 500, args.job_seconds)
    waves = status["waves"]
    stamp = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    makespan = stamp(waves[-1]["finished_at"]) - stamp(waves[0]["started_at"])
    return {
        "agents": args.agents, "state": status["state"], "job_seconds": args.job_seconds,
        "spec": " ".join(spec),
        "ideal_makespan_s": ideal,
        "makespan_s": makespan,
        "measured_wall_s": round(finished - started, 1),
        "overhead_pct": round(100 * (makespan - ideal) / ideal, 2),
        "target": "overhead within 5%",
        "waves": [{"hosts": len(w["hosts"]), "started_at": w["started_at"], "finished_at": w["finished_at"]}
                  for w in waves],
        "controller_idle": idle, "controller_during": during,
        "loadgen": summary, "command": lg.command,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", choices=["steady", "storm", "rollout"])
    p.add_argument("--agents", type=int, required=True)
    p.add_argument("--duration", type=int, default=180, help="steady: seconds of the whole run")
    p.add_argument("--job-seconds", type=float, default=10.0, help="rollout: duration of each job")
    p.add_argument("--max-connecting", type=int, default=256,
                   help="storm: connection attempts the load generator lets run at once")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="boltfleet-bench-") as base:
        result = {"scenario": args.scenario, "machine": machine()}
        result.update({"steady": steady, "storm": storm, "rollout": rollout}[args.scenario](args, base))
        print(json.dumps(result))


if __name__ == "__main__":
    main()
