#!/usr/bin/env python3
"""Benchmark log capture: one program that writes to stdout as fast as it can,
supervised by infantd (`--log-dir`, size rotation), supervisord (`stdout_logfile`
with `stdout_logfile_maxbytes`/`stdout_logfile_backups`) and PM2 (its default log
files), side by side in one run. Prints a table per line length.

    python3 benches/logs.py
    INFANT_LOGS_SECS=3 python3 benches/logs.py                 # quicker
    INFANT_LOGS_BIN=target/release python3 benches/logs.py     # no build

Not part of `cargo test`. See docs/benchmarks.md for what it measures and its knobs.
It reuses benches/peers.py's process bookkeeping: every process it starts runs in
a process group of its own under a temporary folder and is stopped on the way
out, on error and on Ctrl-C too.
"""

import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client

sys.dont_write_bytecode = True   # no __pycache__ left in benches/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers as P  # noqa: E402  (spawn, run, cleanup, kill_tree, ... and their registries)

ROOT = P.ROOT
knob = P.knob

SECS = float(knob("INFANT_LOGS_SECS", "10"))
LINES = [int(x) for x in knob("INFANT_LOGS_LINES", "80,4096").split(",") if x]
ONLY = [x for x in knob("INFANT_LOGS_ONLY", "infantd,supervisord,pm2").split(",") if x]
MAX_SIZE = knob("INFANT_LOGS_MAX_SIZE", "10MiB")
ROTATE_KEEP = int(knob("INFANT_LOGS_ROTATE_KEEP", "5"))
STATUS_EVERY = float(knob("INFANT_LOGS_STATUS_EVERY", "0.1"))
BIN = knob("INFANT_LOGS_BIN", "")
OUT = knob("INFANT_LOGS_OUT", "")
KEEP = knob("INFANT_LOGS_KEEP", "") == "1"
# Rotated files the supervisor deletes stay readable while the bench holds them
# open; past this many bytes held, they are counted during the run (which costs
# CPU beside the supervisor) instead of after it.
HOLD = int(float(knob("INFANT_LOGS_HOLD_GIB", "8")) * (1 << 30))
DRAIN_QUIET = 1.0   # s without growth after the writer stopped = drained
DRAIN_MAX = 60.0

PROGRAM = "flood"
TICK = os.sysconf("SC_CLK_TCK")


def size_bytes(text):
    m = re.fullmatch(r"\s*(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*", text)
    if not m:
        raise SystemExit(f"INFANT_LOGS_MAX_SIZE: {text!r} is not a size like 10MiB")
    unit = {None: 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30,
            "KB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3}[m.group(2)]
    return int(m.group(1)) * unit


def payload(n):
    """A line of n bytes with its newline: printable, no newline inside."""
    pat = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return (pat * (n // len(pat) + 1))[: n - 1]


# ---------------------------------------------------------------------------
# /proc readers
# ---------------------------------------------------------------------------

def cpu_ticks(pid):
    """utime + stime of a process (all its threads, dead ones too)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            f = f.read().rsplit(")", 1)[1].split()
        return int(f[11]) + int(f[12])
    except (OSError, IndexError, ValueError):
        return 0


def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def stopped(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except OSError:
        return False


def wchar(pid):
    """Bytes the process has written (all fds): what the writer produced."""
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# ---------------------------------------------------------------------------
# what landed in the log files, rotated ones included
# ---------------------------------------------------------------------------

class Held:
    """One log file (an inode), held open from first sight, so a rotated file
    the supervisor deletes can still be counted. `marks` are its sizes at the
    window's start and end; it is read once, after the run."""

    def __init__(self, fd):
        self.fd = fd
        self.marks = {}
        self.counted = None   # (newlines before each mark and in total, bytes, intact lines)

    def size(self):
        return os.fstat(self.fd).st_size

    def count(self, pattern):
        """Newlines up to each mark and in all; whole lines that are the payload."""
        if self.counted is not None:
            return self.counted
        cuts = sorted(set(self.marks.values()))
        nl_at = {}
        pos = nl = intact = 0
        carry = b""   # the partial last line: a payload line never spans two lines
        os.lseek(self.fd, 0, os.SEEK_SET)
        while True:
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                break
            for c in cuts:
                if pos < c <= pos + len(chunk):
                    nl_at[c] = nl + chunk.count(b"\n", 0, c - pos)
            nl += chunk.count(b"\n")
            pos += len(chunk)
            both = carry + chunk
            end = both.rfind(b"\n") + 1
            intact += both.count(pattern, 0, end)
            carry = both[end:]
        for c in cuts:
            nl_at.setdefault(c, nl if c >= pos else 0)
        self.counted = ({k: nl_at[v] for k, v in self.marks.items()}, nl, pos, intact)
        return self.counted

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Tracker(threading.Thread):
    """Watches a log folder for files named PREFIX*: every new inode is opened at
    once and held; only sizes are read while the flood runs."""

    def __init__(self, folder, prefix, pattern):
        super().__init__(daemon=True)
        self.folder, self.prefix, self.pattern = folder, prefix, pattern
        self.files = {}      # inode -> Held, for files still open
        self.done = []       # Held files counted and let go (their inode may be reused)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.error = None

    def poll(self):
        try:
            names = [n for n in os.listdir(self.folder) if n.startswith(self.prefix)]
        except FileNotFoundError:
            names = []
        with self.lock:
            for n in names:
                try:
                    fd = os.open(os.path.join(self.folder, n), os.O_RDONLY)
                except FileNotFoundError:
                    continue   # renamed or deleted since the listing; found again next time
                ino = os.fstat(fd).st_ino
                if ino in self.files:
                    os.close(fd)
                else:
                    self.files[ino] = Held(fd)
            # Deleted (rotated out) files stay readable through the fd; past
            # HOLD bytes of them, they are counted now and let go. A deleted
            # file gets no more writes, so its later marks are its full size.
            # One file per look, so that the folder is still looked at often
            # enough to see every new file before it is rotated out too.
            held = {i: h for i, h in self.files.items() if os.fstat(h.fd).st_nlink == 0}
            if held and sum(h.size() for h in held.values()) > HOLD:
                ino = min(held)   # any of them: each is complete
                h = self.files.pop(ino)
                h.count(self.pattern)
                h.close()
                self.done.append(h)

    def run(self):
        try:
            while not self.stopping.is_set():
                self.poll()
                time.sleep(0.02)
        except Exception as e:   # surfaces in the report, not as a silent thread death
            self.error = e

    def total_bytes(self):
        with self.lock:
            return sum(h.size() for h in self.files.values()) + sum(h.counted[2] for h in self.done)

    def mark(self, name):
        """Record every held file's size now (after one more look at the folder)."""
        self.poll()
        with self.lock:
            for h in self.files.values():
                h.marks[name] = h.size()
            for h in self.done:
                if name not in h.marks:
                    h.marks[name] = h.counted[2]
                    h.counted[0][name] = h.counted[1]

    def finish(self):
        """Stop watching; count everything: lines before t0, before t1, in all."""
        self.stopping.set()
        self.join(timeout=10)
        self.poll()
        out = {"t0": 0, "t1": 0, "lines": 0, "bytes": 0, "intact": 0, "files": len(self.files) + len(self.done)}
        for h in list(self.files.values()) + self.done:
            at, nl, size, intact = h.count(self.pattern)
            out["t0"] += at.get("t0", 0)
            out["t1"] += at.get("t1", 0)
            out["lines"] += nl
            out["bytes"] += size
            out["intact"] += intact
            h.close()
        return out


# ---------------------------------------------------------------------------
# the supervisors: each starts one writer program with its output in files
# ---------------------------------------------------------------------------

class Sup:
    """What the measuring loop needs from a supervisor."""
    status_what = None   # how status is asked, when it is

    def own_pids(self):
        """The supervisor's own processes: its pid and the descendants that are
        copies of it (infantd's guardian), never the writer."""
        me = P.comm(self.pid)
        return [self.pid] + [d for d in P.descendants(self.pid) if P.comm(d) == me]

    def writer_pid(self):
        for d in P.descendants(self.pid):
            if P.comm(d) == "yes":
                return d
        return None

    def status_once(self):
        return None


class Infantd(Sup):
    name = "infantd"
    status_what = "`infantctl status`, a new process each time"

    def __init__(self, env):
        self.env = env

    def up(self, d, argv):
        self.d = d
        self.logdir = os.path.join(d, "logs")
        self.prefix = f"{PROGRAM}.out.log"
        self.sock = os.path.join(d, "s.sock")
        conf = os.path.join(d, "infant.toml")
        with open(conf, "w") as f:
            f.write(f"""[program.{PROGRAM}]
command = {json.dumps(argv)}
respawn = false
log = "file"
log_max_size = {json.dumps(MAX_SIZE)}
log_keep = {ROTATE_KEEP}
""")
        # The daemon's own output goes to a file of its own: if the program's
        # output ended up there, capture did not work, and the run says so.
        self.daemon_log = os.path.join(d, "infantd.log")
        self.proc = P.spawn([self.env.infantd, "--config", conf, "--socket", self.sock,
                             "--log-dir", self.logdir], log=self.daemon_log)
        self.pid = self.proc.pid
        P.SUP_PIDS.add(self.pid)
        P.wait_for(lambda: self.proc.poll() is not None or (os.path.exists(self.sock) and self.ctl("status").returncode == 0),
                   30, "infantd socket")
        if self.proc.poll() is not None:
            raise RuntimeError(f"infantd exited ({self.proc.returncode}): {open(self.daemon_log).read()[-300:]}")

    def ctl(self, *args):
        return P.run([self.env.infantctl, "--socket", self.sock, *args], check=False, timeout=60)

    def status_once(self):
        t0 = time.perf_counter()
        r = self.ctl("status")
        ms = (time.perf_counter() - t0) * 1000
        return ms if r.returncode == 0 else None

    def notes(self):
        out = []
        n = os.path.getsize(self.daemon_log) if os.path.exists(self.daemon_log) else 0
        if n > 1 << 20:
            out.append(f"the daemon's own log has {n >> 20} MiB: program output leaked into it")
        r = self.ctl("--json", "status")
        drops = sum(v for k, v in flat(json.loads(l) for l in r.stdout.splitlines() if l.strip()) if "drop" in k and isinstance(v, int))
        if drops:
            out.append(f"infantd reports {drops} bytes dropped")
        return out

    def down(self):
        self.ctl("stop", PROGRAM)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        P.kill_tree(self.pid)
        P.SUP_PIDS.discard(self.pid)


def flat(objs, key=""):
    """Every (dotted key, value) in nested JSON objects."""
    for o in objs:
        if isinstance(o, dict):
            for k, v in o.items():
                yield from flat([v], f"{key}.{k}" if key else k)
        elif isinstance(o, list):
            yield from flat(o, key)
        else:
            yield key, o


class Supervisord(Sup):
    name = "supervisord"
    status_what = "XML-RPC `getProcessInfo` over HTTP, from the bench"

    def __init__(self, env):
        self.env = env

    def up(self, d, argv):
        self.logdir = os.path.join(d, "logs")
        os.makedirs(self.logdir)
        self.prefix = f"{PROGRAM}.out.log"
        port = P.free_port()
        conf = os.path.join(d, "supervisord.conf")
        with open(conf, "w") as f:
            f.write(P.supervisord_conf(d, port) + f"""
[program:{PROGRAM}]
command={' '.join(argv)}
autostart=true
autorestart=false
startsecs=0
stopsignal=KILL
stdout_logfile={self.logdir}/{PROGRAM}.out.log
stdout_logfile_maxbytes={size_bytes(MAX_SIZE)}
stdout_logfile_backups={ROTATE_KEEP}
stderr_logfile=NONE
""")
        self.conf = conf
        self.proc = P.spawn([self.env.supervisord, "-c", conf], log=os.path.join(d, "out.log"))
        self.pid = self.proc.pid
        P.SUP_PIDS.add(self.pid)
        P.CLEANUPS.append(lambda c=conf: P.run([self.env.supervisorctl, "-c", c, "shutdown"], check=False, timeout=30))
        self.rpc = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}/RPC2")

        def ready():
            try:
                return self.rpc.supervisor.getState()["statename"] == "RUNNING"
            except (OSError, xmlrpc.client.Error):
                return False
        P.wait_for(ready, 30, "supervisord")

    def status_once(self):
        t0 = time.perf_counter()
        try:
            self.rpc.supervisor.getProcessInfo(PROGRAM)
        except (OSError, xmlrpc.client.Error):
            return None
        return (time.perf_counter() - t0) * 1000

    def notes(self):
        return []

    def down(self):
        P.run([self.env.supervisorctl, "-c", self.conf, "shutdown"], check=False, timeout=60)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        P.kill_tree(self.pid)
        P.SUP_PIDS.discard(self.pid)


class Pm2(Sup):
    name = "pm2"

    def __init__(self, env):
        self.env = env

    def pm2(self, *args, check=True):
        return P.run(["node", self.env.pm2_bin, *args], env=self.e, check=check, timeout=120)

    def up(self, d, argv):
        home = os.path.join(d, "pm2home")
        os.makedirs(home)
        self.logdir = os.path.join(home, "logs")   # PM2's default: $PM2_HOME/logs/NAME-out.log
        self.prefix = f"{PROGRAM}-out"
        self.e = dict(os.environ, PM2_HOME=home)
        P.CLEANUPS.append(lambda e=self.e: P.run(["node", self.env.pm2_bin, "kill"], env=e, check=False, timeout=60))
        self.pm2("ping")
        pidfile = os.path.join(home, "pm2.pid")
        self.pid = int(P.wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), 10, "pm2.pid"))
        P.SUP_PIDS.add(self.pid)
        eco = os.path.join(d, "flood.json")
        with open(eco, "w") as f:
            json.dump({"apps": [{"name": PROGRAM, "script": argv[0], "args": argv[1:], "interpreter": "none",
                                 "exec_mode": "fork", "autorestart": False}]}, f)
        self.pm2("start", eco)

    def notes(self):
        return []

    def down(self):
        self.pm2("kill", check=False)
        if P.alive(self.pid):
            P.kill_tree(self.pid)
        P.SUP_PIDS.discard(self.pid)


# ---------------------------------------------------------------------------
# one flood under one supervisor
# ---------------------------------------------------------------------------

R = {}       # (row, column) -> value
NOTES = []


def put(row, col, value):
    R[(row, col)] = value
    shown = f"{value:.2f}" if isinstance(value, float) else value
    print(f"  {col:22} {row:40} {shown}", flush=True)


def flood(env, sup, line):
    col = f"{sup.name}, {line} B lines"
    text = payload(line)
    pattern = (text + "\n").encode()
    d = tempfile.mkdtemp(dir=env.tmp, prefix=f"{sup.name}-{line}-")
    try:
        sup.up(d, [env.yes, text])
        tr = Tracker(sup.logdir, sup.prefix, pattern)
        tr.start()
        P.wait_for(lambda: tr.total_bytes() > 0 or tr.error, 60, f"{sup.name}: first bytes in {sup.logdir}")
        writer = P.wait_for(sup.writer_pid, 10, "the writer's pid")
        own = sup.own_pids()
        t0 = time.perf_counter()
        tr.mark("t0")
        c0 = sum(cpu_ticks(p) for p in own)
        w0 = wchar(writer)
        rss0 = status_kib(sup.pid, "VmRSS")
        rss, lat = 0, []
        while time.perf_counter() - t0 < SECS:
            s0 = time.perf_counter()
            rss = max(rss, status_kib(sup.pid, "VmRSS"))
            ms = sup.status_once()
            if ms is not None:
                lat.append(ms)
            time.sleep(max(0.0, STATUS_EVERY - (time.perf_counter() - s0)))
        tr.mark("t1")
        t1 = time.perf_counter()
        c1 = sum(cpu_ticks(p) for p in own)
        w1 = wchar(writer)
        # Freeze the writer (its byte count is then final), let the supervisor
        # write what it still holds, then count everything.
        os.kill(writer, signal.SIGSTOP)
        P.wait_for(lambda: stopped(writer), 10, "the writer to stop")
        written = wchar(writer)
        last, quiet_since, t_stop = -1, time.perf_counter(), time.perf_counter()
        while time.perf_counter() - t_stop < DRAIN_MAX:
            b = tr.total_bytes()
            if b != last:
                last, quiet_since = b, time.perf_counter()
            elif time.perf_counter() - quiet_since >= DRAIN_QUIET:
                break
            time.sleep(0.05)
        drain = quiet_since - t_stop
        # The same status asks with the flood stopped: what they cost anyway
        # (for infantctl, a process start).
        quiet = [ms for ms in (sup.status_once() for _ in range(10)) if ms is not None]
        hwm = status_kib(sup.pid, "VmHWM")
        notes = sup.notes()
        os.kill(writer, signal.SIGKILL)
        c = tr.finish()
        if tr.error:
            raise RuntimeError(f"log tracker: {tr.error}")

        secs = t1 - t0
        lines = c["t1"] - c["t0"]
        mb = lines * line / 1e6
        cpu_s = (c1 - c0) / TICK
        put("lines/s persisted", col, lines / secs)
        put("MB/s persisted (payload)", col, mb / secs)
        put("supervisor CPU (% of a core)", col, cpu_s / secs * 100)
        put("supervisor CPU per MB (ms)", col, cpu_s * 1000 / mb if mb else float("inf"))
        put("supervisor RSS at the window's start (MiB)", col, rss0 / 1024)
        put("supervisor RSS, max while flooding (MiB)", col, rss / 1024)
        put("supervisor peak RSS, VmHWM (MiB)", col, hwm / 1024)
        if lat:
            put("status answer, median / max (ms)", col, f"{statistics.median(lat):.1f} / {max(lat):.1f} ({len(lat)} asks)")
            R[("#status_max", col)] = max(lat)
        else:
            put("status answer, median / max (ms)", col, "n/a" if sup.status_what is None else "no answer")
        if quiet:
            put("status answer after the flood, median / max (ms)", col, f"{statistics.median(quiet):.1f} / {max(quiet):.1f}")
        if w0 is not None and w1 is not None:
            put("writer MB/s (what it wrote)", col, (w1 - w0) / 1e6 / secs)
        extra = (c["bytes"] - c["lines"] * line) / c["lines"] if c["lines"] else 0
        put("prefix bytes per line on disk", col, extra)
        if written is not None:
            lost = written // line - c["lines"]
            put("lines lost (written − in files, after drain)", col, f"{lost} of {written // line} ({lost / max(1, written // line) * 100:.1f} %)")
        bad = c["lines"] - c["intact"]
        put("lines not intact", col, bad)
        put("drain after the writer stopped (s)", col, drain)
        put("log files seen (rotated incl.)", col, c["files"])
        R[("#mbs", col)] = mb / secs
        R[("#cpu_mb", col)] = cpu_s * 1000 / mb if mb else None
        R[("#rss", col)] = max(rss, hwm) / 1024
        for n in notes:
            NOTES.append(f"{col}: {n}")
            print(f"  note: {n}", flush=True)
    except Exception as e:
        put("lines/s persisted", col, f"error: {e}"[:200])
        print(f"  {col}: {e}", file=sys.stderr, flush=True)
    finally:
        try:
            sup.down()
        except Exception as e:
            print(f"  {sup.name} down: {e}", file=sys.stderr)
        P.cleanup()
        if not KEEP:
            shutil.rmtree(d, ignore_errors=True)


def writer_ceiling(env, line, to_file):
    """The writer alone for 2 s, into a pipe read by `cat > /dev/null` (what it
    can produce when nothing slows it down), or straight into a file (what this
    machine's file system takes from it, with no supervisor in between)."""
    if to_file:
        path = os.path.join(env.tmp, "ceiling.log")
        yes = P.spawn([env.yes, payload(line)], stdout=open(path, "wb"))
    else:
        yes = P.spawn([env.yes, payload(line)], stdout=subprocess.PIPE)
        cat = subprocess.Popen(["cat"], stdin=yes.stdout, stdout=subprocess.DEVNULL, start_new_session=True)
        P.STARTED.append(cat)
        yes.stdout.close()
    try:
        time.sleep(0.3)
        w0, t0 = wchar(yes.pid), time.perf_counter()
        time.sleep(2.0)
        w1, t1 = wchar(yes.pid), time.perf_counter()
        return (w1 - w0) / 1e6 / (t1 - t0)
    finally:
        P.cleanup()
        if to_file:
            os.unlink(path)


# ---------------------------------------------------------------------------
# environment: infantd binaries, PM2 from npm, supervisord from PyPI
# ---------------------------------------------------------------------------

class Env:
    def __init__(self, tmp):
        self.tmp = tmp
        self.versions = {}
        self.yes = shutil.which("yes")
        if not self.yes:
            raise SystemExit("`yes` (coreutils) is not on PATH")

    def prepare(self, want):
        if "infantd" in want:
            self.log_capture = False
            rel = os.path.abspath(BIN) if BIN else os.path.join(ROOT, "target", "release")
            if not BIN:
                print("building infantd, infantctl (--profile bench) ...", flush=True)
                P.run([os.environ.get("CARGO", "cargo"), "build", "--profile", "bench", "--quiet",
                       "--bin", "infantd", "--bin", "infantctl"], cwd=ROOT, timeout=3600)
            self.infantd = os.path.join(rel, "infantd")
            self.infantctl = os.path.join(rel, "infantctl")
            helptext = P.run([self.infantd, "--help"], check=False).stdout
            self.log_capture = "--log-dir" in helptext
            ver = P.run([self.infantd, "--version"], check=False).stdout.strip()
            if BIN:
                self.versions["infantd"] = f"{ver} (from {rel})"
            else:
                rev = P.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=False).stdout.strip()
                self.versions["infantd"] = f"{ver} (git {rev})"
        if "pm2" in want:
            npm_dir = os.path.join(self.tmp, "npm")
            os.makedirs(npm_dir)
            npm_env = dict(os.environ, npm_config_cache=os.path.join(self.tmp, "npm-cache"),
                           npm_config_update_notifier="false", npm_config_fund="false", npm_config_audit="false")
            print("installing pm2 from npm ...", flush=True)
            with open(os.path.join(npm_dir, "package.json"), "w") as f:
                f.write('{"name":"logs-bench","version":"1.0.0","private":true}')
            P.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "pm2"],
                  cwd=npm_dir, env=npm_env, timeout=600)
            nm = os.path.join(npm_dir, "node_modules")
            self.pm2_bin = os.path.join(nm, "pm2", "bin", "pm2")
            self.versions["pm2"] = json.load(open(os.path.join(nm, "pm2", "package.json")))["version"]
            self.versions["node"] = P.run(["node", "--version"]).stdout.strip()
        if "supervisord" in want:
            print("installing supervisor from PyPI (venv) ...", flush=True)
            venv = os.path.join(self.tmp, "venv")
            P.run([sys.executable, "-m", "venv", venv], timeout=300)
            P.run([os.path.join(venv, "bin", "pip"), "install", "--quiet", "--no-cache-dir", "supervisor"], timeout=600)
            self.supervisord = os.path.join(venv, "bin", "supervisord")
            self.supervisorctl = os.path.join(venv, "bin", "supervisorctl")
            self.versions["supervisor"] = P.run([self.supervisord, "--version"]).stdout.strip()
            self.versions["python"] = platform.python_version()
        self.versions["yes"] = P.run([self.yes, "--version"], check=False).stdout.split("\n")[0]

    def sup(self, name):
        return {"infantd": Infantd, "supervisord": Supervisord, "pm2": Pm2}[name](self)


# ---------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------

def fmt(v):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.2f}" if v < 10 else f"{v:.0f}" if v >= 100 else f"{v:.1f}"
    return str(v)


def verdicts(cols):
    """The targets: ≥ 3× the best peer's persisted MB/s at no more CPU per MB,
    RSS < 8 MiB, status < 50 ms during the flood."""
    out = []
    for line in LINES:
        me = f"infantd, {line} B lines"
        peers = [c for c in cols if c.endswith(f", {line} B lines") and not c.startswith(("infantd", "writer"))]
        best = max(peers, key=lambda c: R.get(("#mbs", c)) or 0, default=None)
        best_mbs = R.get(("#mbs", best)) if best else None
        ceiling = R.get(("writer MB/s (what it wrote)", f"writer → file, {line} B lines"))
        if best_mbs and isinstance(ceiling, float) and 3 * best_mbs > ceiling:
            out.append(f"- {line} B lines: note: 3× the best peer ({3 * best_mbs:.0f} MB/s) is more than "
                       f"the writer gets straight into a file here ({ceiling:.0f} MB/s)")
        mbs, cpu = R.get(("#mbs", me)), R.get(("#cpu_mb", me))
        if mbs is None:
            out.append(f"- {line} B lines: infantd not measured")
            continue
        if best_mbs:
            ratio = mbs / best_mbs
            bcpu = R.get(("#cpu_mb", best))
            cpu_ok = cpu is not None and bcpu is not None and cpu <= bcpu
            out.append(f"- {line} B lines: {ratio:.1f}× the best peer ({best.split(',')[0]}, {best_mbs:.1f} MB/s): "
                       f"{'✅' if ratio >= 3 else '❌'} (target ≥ 3×); CPU per MB {fmt(cpu)} vs {fmt(bcpu)} ms: "
                       f"{'✅' if cpu_ok else '❌'} (target: no more)")
        rss = R.get(("#rss", me))
        out.append(f"- {line} B lines: infantd RSS {fmt(rss)} MiB: {'✅' if rss is not None and rss < 8 else '❌'} (target < 8 MiB)")
        st = R.get(("#status_max", me))
        out.append(f"- {line} B lines: `infantctl status` max {fmt(st)} ms: {'✅' if st is not None and st < 50 else '❌'} (target < 50 ms)")
    return "\n".join(out)


def table(cols, line):
    """One table per line length; a column per setup."""
    suffix = f", {line} B lines"
    cols = [c for c in cols if c.endswith(suffix)]
    rows = []
    for (row, c) in R:
        if not row.startswith("#") and c in cols and row not in rows:
            rows.append(row)
    head = [f"{line} B lines"] + [c[: -len(suffix)] for c in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row] + [fmt(R.get((row, c))) for c in cols]
        lines.append("| " + " | ".join(x.replace("|", "/") for x in cells) + " |")
    return "\n".join(lines)


def main():
    tmp = tempfile.mkdtemp(prefix="infant-logs-")
    env = Env(tmp)
    started = datetime.datetime.now(datetime.timezone.utc)
    load0 = open("/proc/loadavg").read().split()[:3]

    def on_signal(sig, _frame):
        raise KeyboardInterrupt(f"signal {sig}")
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    cols = []
    try:
        env.prepare(ONLY)
        print("\nversions:", ", ".join(f"{k} {v}" for k, v in env.versions.items()))
        print("machine:", P.machine(), "| load average at start:", " ".join(load0), flush=True)
        print(f"\n== flood: `yes LINE` for {SECS:g} s per run; rotation at {MAX_SIZE}, {ROTATE_KEEP} kept ==", flush=True)
        for line in LINES:
            for to_file in (False, True):
                col = f"writer → {'file' if to_file else 'pipe'}, {line} B lines"
                put("writer MB/s (what it wrote)", col, writer_ceiling(env, line, to_file))
                cols.append(col)
            for name in ONLY:
                col = f"{name}, {line} B lines"
                cols.append(col)
                if name == "infantd" and not env.log_capture:
                    put("lines/s persisted", col, "n/a: infantd has no log capture in this build (no --log-dir in `infantd --help`)")
                    continue
                flood(env, env.sup(name), line)
    finally:
        P.cleanup()
        if not KEEP:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("kept", tmp)
    load1 = open("/proc/loadavg").read().split()[:3]
    t = "\n\n".join(table(cols, line) for line in LINES)
    v = verdicts(cols)
    notes = "\n".join(f"- {n}" for n in NOTES)
    report = (f"date {started.strftime('%Y-%m-%d %H:%M UTC')}; machine {P.machine()}; "
              f"load average {' '.join(load0)} at start, {' '.join(load1)} at end\n"
              f"versions: {', '.join(f'{k} {v}' for k, v in env.versions.items())}\n\n{t}\n\n{v}\n"
              + (f"\n{notes}\n" if notes else ""))
    print("\n" + report)
    if OUT:
        with open(OUT, "w") as f:
            f.write(f"# Log capture benchmark\n\nWritten by `python3 benches/logs.py`.\n\n{report}")
        print(f"wrote {OUT}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as e:
        print(f"interrupted ({e}); everything started was stopped", file=sys.stderr)
        sys.exit(130)
