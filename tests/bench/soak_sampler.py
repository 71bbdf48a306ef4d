#!/usr/bin/env python3
"""Sampler and report of run_soak_bench.sh (the soak benchmark).

sample: every INTERVAL seconds, reads the daemon's /proc entries (VmRSS,
Threads, open descriptors, utime+stime) and the decision lines its log
gained since the last sample (the first time: since byte --from), and
appends one row to DIR/soak.tsv:

  t_s epoch phase rss_kb threads fds cpu_ticks cpu_pct
  good_n good_p50_ms good_max_ms steady_n steady_bad steady_odd
  flood_n flood_p50_ms flood_max_ms bad_reasons odd_reasons flood_reasons

  phase      flood when a flood (DIR/floods.tsv: "N start EPOCH" and
             "N end EPOCH ...") overlapped the window, else quiet; rest once
             DIR/rest exists (the traffic is over); the row written when
             DIR/stop appears is "end", one after the daemon vanished "dead"
  good_*     decisions for the good enforce domain (--good): count, median
             and largest elapsed_ms
  steady_*   decisions for the domains of the steady traffic (--steady):
             count; how many were not action=continue (bad_reasons lists
             them as action/reason:count); how many had a reason other than
             verified or no-policy, i.e. were decided without the DNS or
             HTTPS answers they normally get (odd_reasons: domain/reason:count)
  flood_*    decisions for domains ending in --flood-suffix; flood_reasons
             counts their reasons
Every steady decision also goes to DIR/decisions.tsv
(epoch t_s phase domain action reason elapsed_ms), for the percentiles.

report: prints the table (a row per minute while quiet, a row per sample
while a flood lasts) and the summary; exits 1 when threads or descriptors
at the end exceed those at the start by more than the margins.

Usage:
  soak_sampler.py sample --pid PID --log FILE [--from BYTE] --dir DIR
                  --good DOMAIN --steady D1,D2,... --flood-suffix=SUFFIX
                  [--interval 10]
  soak_sampler.py report --dir DIR --good DOMAIN [--thread-margin 4] [--fd-margin 8]
"""
import argparse, collections, os, re, statistics, sys, time

COLUMNS = ("t_s epoch phase rss_kb threads fds cpu_ticks cpu_pct good_n good_p50_ms good_max_ms "
           "steady_n steady_bad steady_odd flood_n flood_p50_ms flood_max_ms "
           "bad_reasons odd_reasons flood_reasons").split()
NORMAL_REASONS = {"verified", "no-policy"}
FIELD = re.compile(r'([a-z_]+)=("(?:[^"\\]|\\.)*"|\S*)')
TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- sample
def proc_sample(pid):
    """(rss_kb, threads, fds, cpu_ticks) of PID, or None when it is gone."""
    try:
        status = open("/proc/%d/status" % pid).read()
        stat = open("/proc/%d/stat" % pid).read()
        fds = len(os.listdir("/proc/%d/fd" % pid))
    except (FileNotFoundError, ProcessLookupError):
        return None
    values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    fields = stat.rsplit(")", 1)[1].split()  # from field 3 (state) on; comm may hold spaces
    return (int(values["VmRSS"].split()[0]), int(values["Threads"]), fds,
            int(fields[11]) + int(fields[12]))


def decisions(text):
    """The key=value fields of each decision line in TEXT."""
    for line in text.splitlines():
        at = line.find("decision queue_id=")
        if at >= 0:
            yield {k: v.strip('"') for k, v in FIELD.findall(line[at:])}


class LogTail:
    """The complete lines a growing file gained since the last call."""

    def __init__(self, path, offset):
        self.path, self.offset = path, offset

    def new_text(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        return data[:end].decode("utf-8", "replace")


def flood_windows(path):
    """[(start, end or None)] from the floods file."""
    starts, ends = {}, {}
    if os.path.exists(path):
        for line in open(path):
            parts = line.split()
            if len(parts) >= 3:
                (starts if parts[1] == "start" else ends)[parts[0]] = float(parts[2])
    return [(s, ends.get(n)) for n, s in starts.items()]


def in_flood(floods, t0, t1):
    return any(s < t1 and (e is None or e > t0) for s, e in floods)


def median_max(values):
    if not values:
        return "-", "-"
    return "%g" % statistics.median(values), "%d" % max(values)


def counts_text(counter):
    return ",".join("%s:%d" % kv for kv in counter.most_common()) or "-"


class Window:
    """The decisions of one sample window, sorted by kind."""

    def __init__(self, args):
        self.args, self.steady = args, set(args.steady.split(","))
        self.good, self.flood, self.steady_n = [], [], 0
        self.bad, self.odd, self.flood_reasons = collections.Counter(), collections.Counter(), collections.Counter()
        self.lines = []

    def add(self, d, now, t_s, phase):
        domain, reason, action = d.get("domain", ""), d.get("reason", "?"), d.get("action", "?")
        ms = int(d.get("elapsed_ms", "0") or 0)
        if domain in self.steady:
            self.steady_n += 1
            if domain == self.args.good:
                self.good.append(ms)
            if action != "continue":
                self.bad["%s/%s" % (action, reason)] += 1
            if reason not in NORMAL_REASONS:
                self.odd["%s/%s" % (domain, reason)] += 1
            self.lines.append("%.1f\t%.1f\t%s\t%s\t%s\t%s\t%d\n" % (now, t_s, phase, domain, action, reason, ms))
        elif domain.endswith(self.args.flood_suffix):
            self.flood.append(ms)
            self.flood_reasons[reason] += 1

    def row_tail(self):
        return [len(self.good), *median_max(self.good), self.steady_n, sum(self.bad.values()),
                sum(self.odd.values()), len(self.flood), *median_max(self.flood),
                counts_text(self.bad), counts_text(self.odd), counts_text(self.flood_reasons)]


def phase_of(args, floods, prev, now, stopping):
    if stopping:
        return "end"
    if os.path.exists(os.path.join(args.dir, "rest")):
        return "rest"
    return "flood" if in_flood(floods, prev, now) else "quiet"


def cmd_sample(args):
    tail = LogTail(args.log, args.from_byte)
    tsv = open(os.path.join(args.dir, "soak.tsv"), "w")
    decisions_out = open(os.path.join(args.dir, "decisions.tsv"), "w")
    tsv.write("\t".join(COLUMNS) + "\n")
    stop = os.path.join(args.dir, "stop")
    start = prev = time.time()
    cpu_before, k = None, 0
    while True:
        k += 1
        while time.time() < start + k * args.interval and not os.path.exists(stop):
            time.sleep(0.2)
        now, stopping = time.time(), os.path.exists(stop)
        sample = proc_sample(args.pid)
        if sample is None:
            tsv.write("\t".join(["%.1f" % (now - start), "%.1f" % now, "dead"] + ["-"] * (len(COLUMNS) - 3)) + "\n")
            return 1
        phase = phase_of(args, flood_windows(os.path.join(args.dir, "floods.tsv")), prev, now, stopping)
        window = Window(args)
        for d in decisions(tail.new_text()):
            window.add(d, now, now - start, phase)
        cpu = sample[3]
        cpu_pct = "-" if cpu_before is None else "%.1f" % (100.0 * (cpu - cpu_before) / TICKS / max(now - prev, 1e-3))
        row = ["%.1f" % (now - start), "%.1f" % now, phase, *sample, cpu_pct, *window.row_tail()]
        tsv.write("\t".join(str(v) for v in row) + "\n")
        decisions_out.writelines(window.lines)
        tsv.flush()
        decisions_out.flush()
        prev, cpu_before = now, cpu
        if stopping:
            return 0


# ---------------------------------------------------------------- report
def read_tsv(path, names=None):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    if names is None:
        names, lines = lines[0], lines[1:]
    return [dict(zip(names, line)) for line in lines]


def num(v):
    return None if v in ("-", "", None) else float(v)


def pct(values, p):
    """The p-th percentile (nearest rank) of VALUES, or None."""
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, -(-p * len(v) // 100) - 1))]


def fmt(v, spec="%g"):
    return "-" if v is None else spec % v


def table_groups(rows):
    """Quiet and rest rows grouped by minute; each flood row and the end row alone."""
    groups, current, key = [], [], None
    for r in rows:
        if r["phase"] in ("flood", "end"):
            if current:
                groups.append(current)
            groups.append([r])
            current, key = [], None
            continue
        k = (int(float(r["t_s"]) // 60), r["phase"])
        if current and k != key:
            groups.append(current)
            current = []
        current.append(r)
        key = k
    if current:
        groups.append(current)
    return groups


def notes(g):
    """Flood reasons, then BAD (not continue) and ODD (unusual reason) steady decisions."""
    out = sorted({r["flood_reasons"] for r in g} - {"-"})
    for kind, key in (("BAD", "bad_reasons"), ("ODD", "odd_reasons")):
        c = collections.Counter()
        for r in g:
            for kv in r[key].split(","):
                if ":" in kv:
                    name, n = kv.rsplit(":", 1)
                    c[name] += int(n)
        if c:
            out.append("%s %s" % (kind, counts_text(c)))
    return "; ".join(out) or "-"


def print_table(rows, decisions):
    print("  %-8s %-5s %7s %4s %4s %5s | %5s %5s %5s %5s | %4s %4s | %5s %5s %5s | %s" % (
        "t", "phase", "rss_MiB", "thr", "fds", "cpu%", "good", "p50", "p99", "max",
        "bad", "odd", "flood", "p50", "max", "notes (flood reasons; BAD/ODD steady decisions)"))
    for g in table_groups(rows):
        last = g[-1]
        t1 = float(last["t_s"])
        t0 = float(g[0]["t_s"]) - 10
        ms = [int(d["ms"]) for d in decisions if d["good"] and t0 < float(d["t_s"]) <= t1]
        cpu = [num(r["cpu_pct"]) for r in g if num(r["cpu_pct"]) is not None]
        flood_n = sum(int(r["flood_n"]) for r in g)
        flood_max = [num(r["flood_max_ms"]) for r in g if num(r["flood_max_ms"]) is not None]
        flood_p50 = [num(r["flood_p50_ms"]) for r in g if num(r["flood_p50_ms"]) is not None]
        label = "%dm%02ds" % divmod(int(t1), 60) if last["phase"] in ("flood", "end") else "%2d-%2dm" % (t1 // 60, t1 // 60 + 1)
        print("  %-8s %-5s %7.1f %4d %4d %5s | %5d %5s %5s %5s | %4d %4d | %5s %5s %5s | %s" % (
            label, last["phase"], int(last["rss_kb"]) / 1024.0, max(int(r["threads"]) for r in g),
            max(int(r["fds"]) for r in g), fmt(statistics.mean(cpu) if cpu else None, "%.1f"),
            len(ms), fmt(pct(ms, 50)), fmt(pct(ms, 99)), fmt(max(ms) if ms else None),
            sum(int(r["steady_bad"]) for r in g), sum(int(r["steady_odd"]) for r in g),
            flood_n or "-", fmt(statistics.median(flood_p50) if flood_p50 else None),
            fmt(max(flood_max) if flood_max else None, "%d"), notes(g)))


def window_mean(rows, t0, t1, key):
    vals = [int(r[key]) for r in rows if t0 <= float(r["t_s"]) < t1]
    return statistics.mean(vals) if vals else None


def latency_line(label, values):
    return "    %-16s n=%-6d p50 %s ms  p99 %s ms  max %s ms" % (
        label, len(values), fmt(pct(values, 50)), fmt(pct(values, 99)), fmt(max(values) if values else None))


def summary_resources(rows, floods, args):
    """Start/end/max, the values before each flood, RSS growth, and the leak
    verdict; returns failure texts."""
    first_flood = min((s for s, _ in floods), default=None)
    before = [r for r in rows if r["phase"] == "quiet" and (first_flood is None or float(r["epoch"]) < first_flood)]
    start, end = (before[-1] if before else rows[0]), rows[-1]
    failures = []
    print("  %-8s %9s %9s %9s   (start: t=%ss, the last sample before the first flood; end: t=%ss, %s)" % (
        "", "start", "end", "max", start["t_s"], end["t_s"], end["phase"]))
    for key, margin in (("rss_kb", None), ("threads", args.thread_margin), ("fds", args.fd_margin)):
        top = max(rows, key=lambda r: int(r[key]))
        print("  %-8s %9s %9s %9s   (max at t=%ss, %s)" % (key, start[key], end[key], top[key], top["t_s"], top["phase"]))
        if margin is not None and int(end[key]) > int(start[key]) + margin:
            failures.append("%s at the end %s > start %s + %d (a leak?)" % (key, end[key], start[key], margin))
    marks = []
    for s, _ in sorted(floods):
        prior = [r for r in rows if float(r["epoch"]) < s and r["phase"] == "quiet"]
        if prior:
            marks.append(prior[-1])
    if marks:
        print("  just before each flood (a staircase is a leak): rss_MiB %s; threads %s; fds %s" % (
            " ".join("%.1f" % (int(r["rss_kb"]) / 1024.0) for r in marks),
            " ".join(r["threads"] for r in marks), " ".join(r["fds"] for r in marks)))
    traffic = [r for r in rows if r["phase"] in ("quiet", "flood")]
    total = float(traffic[-1]["t_s"]) if traffic else 0
    early = window_mean(traffic, total / 6, total / 3, "rss_kb")
    late = window_mean(traffic, total - total / 6, total + 1, "rss_kb")
    if early and late:
        growth = 100.0 * (late - early) / early
        verdict = "kept growing" if growth > 5 else "flat (within 5 %)"
        print("  RSS mean, minutes %.1f-%.1f: %.1f MiB; last %.1f minutes: %.1f MiB; %+.1f %% -> %s" % (
            total / 360, total / 180, early / 1024, total / 360, late / 1024, growth,
            verdict if total >= 900 else "no verdict under 15 minutes (the first window holds no flood)"))
    return failures


def summary_latency(decisions, traffic, floods, good):
    print("  %s decisions, the daemon's elapsed_ms:" % good)
    for phase in ("quiet", "flood"):
        print(latency_line("%s windows" % phase, [int(d["ms"]) for d in decisions if d["good"] and d["phase"] == phase]))
    print("  %s, smtp-source wall time of each second's batch (Postfix + milter):" % good)
    for phase in ("quiet", "flood"):
        ms = [int(t["wall_ms"]) for t in traffic if t["domain"] == good and
              in_flood(floods, float(t["epoch"]), float(t["epoch"]) + int(t["wall_ms"]) / 1000.0) == (phase == "flood")]
        print(latency_line("%s seconds" % phase, ms))


def summary_reasons(decisions, floods):
    """Reasons of the steady decisions per domain, before and after the first flood."""
    first = min((s for s, _ in floods), default=float("inf"))
    print("  steady decisions by domain and reason, before the first flood | after it:")
    for domain in sorted({d["domain"] for d in decisions}):
        parts = []
        for early in (True, False):
            c = collections.Counter(d["reason"] for d in decisions
                                    if d["domain"] == domain and (float(d["epoch"]) < first) == early)
            parts.append(counts_text(c))
        print("    %-20s %s | %s" % (domain, parts[0], parts[1]))


def summary_traffic(rows, decisions, traffic, flood_lines):
    sent = collections.Counter()
    for t in traffic:
        sent[t["domain"]] += int(t["n"])
    print("  steady messages sent %d (%s); decisions logged %d, not continue %d" % (
        sum(sent.values()), ", ".join("%s %d" % kv for kv in sorted(sent.items())),
        len(decisions), sum(1 for d in decisions if d["action"] != "continue")))
    reasons = collections.Counter()
    for r in rows:
        for kv in r["flood_reasons"].split(","):
            if ":" in kv:
                k, v = kv.rsplit(":", 1)
                reasons[k] += int(v)
    print("  floods %d: recipients answered %d of %d; flood decisions logged %d (%s)" % (
        len(flood_lines), sum(int(f[3]) for f in flood_lines), sum(int(f[4]) for f in flood_lines),
        sum(reasons.values()), counts_text(reasons)))


def cmd_report(args):
    rows = [r for r in read_tsv(os.path.join(args.dir, "soak.tsv")) if r["phase"] != "dead"]
    if not rows:
        print("no samples")
        return 1
    decisions = read_tsv(os.path.join(args.dir, "decisions.tsv"), "epoch t_s phase domain action reason ms".split())
    for d in decisions:
        d["good"] = d["domain"] == args.good
    traffic = read_tsv(os.path.join(args.dir, "traffic.tsv"), "epoch domain n wall_ms rc".split())
    floods_path = os.path.join(args.dir, "floods.tsv")
    floods = flood_windows(floods_path)
    flood_lines = [f for f in (line.split() for line in open(floods_path)) if f[1:2] == ["end"]] \
        if os.path.exists(floods_path) else []
    print("== soak table: quiet/rest rows one per minute (rss at its end, thr/fds the minute's max),")
    print("   flood rows one per 10 s sample; good = decisions for %s (p50/p99/max elapsed_ms)" % args.good)
    print_table(rows, decisions)
    print("== soak summary")
    failures = summary_resources(rows, floods, args)
    summary_latency(decisions, traffic, floods, args.good)
    summary_reasons(decisions, floods)
    summary_traffic(rows, decisions, traffic, flood_lines)
    for f in failures:
        print("  FAIL " + f)
    return 1 if failures else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--log", required=True)
    s.add_argument("--from", dest="from_byte", type=int, default=0)
    s.add_argument("--dir", required=True)
    s.add_argument("--good", required=True)
    s.add_argument("--steady", required=True)
    s.add_argument("--flood-suffix", required=True)
    s.add_argument("--interval", type=float, default=10)
    r = sub.add_parser("report")
    r.add_argument("--dir", required=True)
    r.add_argument("--good", required=True)
    r.add_argument("--thread-margin", type=int, default=4)
    r.add_argument("--fd-margin", type=int, default=8)
    args = p.parse_args()
    return cmd_sample(args) if args.cmd == "sample" else cmd_report(args)


if __name__ == "__main__":
    sys.exit(main())
