"""An SQS event source mapping under load: messages/s, end-to-end latency, losses, duplicates, the pollers' CPU.

    python benchmarks/sqs_mapping.py              # the issue's figures: 10,000 messages, batch 10, 8 environments
    python benchmarks/sqs_mapping.py --messages 1000

The emulator runs in this process with the embedded SQS endpoint (moto, a child process) and a mapping with
``BatchSize`` 10 and ``ScalingConfig.MaximumConcurrency`` 8 onto a function with reserved concurrency 8 that notes
each message (``functions/sqs_sink``). A sender process sends the messages in ``SendMessageBatch`` calls of ten
as fast as it can while the mapping drains the queue. Latency is from ``SentTimestamp`` (the SQS server's clock)
to the handler's clock, same machine. Throughput is messages over the time from the first send to the last
message processed; the SQS server (moto) accepts a few hundred sends per second here, so this rate is the
sender's. A queue filled first and drained after measures moto, not the mapping: moto's ReceiveMessage walks
every message in the queue (1.4 s per call with 1,000 messages waiting, measured here), so a full queue is not a
figure of this project. CPU: the pollers' own (thread time: receive, delete, hand-over) and this whole process's
(pollers, event loop, Runtime API), per message; moto's and the runtimes' are theirs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from emulator import FunctionConfig, ServerConfig  # noqa: E402
from emulator.config.events import EventsConfig, QueueConfig, SqsMappingConfig  # noqa: E402
from emulator.testing import CollectingSink, EmulatorThread  # noqa: E402

SENDER = """
import json, sys, time, boto3
url, endpoint, first, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x",
                   aws_secret_access_key="x")
sqs.get_queue_url(QueueName=url.rsplit("/", 1)[1])  # imported, connected: ready
print("ready", flush=True)
sys.stdin.readline()  # every sender starts at once
started = time.time()
end = first + count
for start in range(first, end, 10):
    entries = [{"Id": str(i), "MessageBody": json.dumps({"n": start + i})} for i in range(min(10, end - start))]
    response = sqs.send_message_batch(QueueUrl=url, Entries=entries)
    assert not response.get("Failed"), response
print(json.dumps({"started": started, "ended": time.time()}))
"""


def cpu_of(pid: int) -> float:
    """User + system CPU of another process so far (utime and stime in /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--senders", type=int, default=2, help="sender processes, each sending its share")
    parser.add_argument(
        "--moto-as-is", action="store_true", help="the embedded moto as released: its own server, its own SQS paths"
    )
    parser.add_argument("--json", action="store_true", help="one JSON document")
    args = parser.parse_args()
    if args.moto_as_is:
        os.environ["LAMBDA_FREEZE_MOTO_AS_IS"] = "1"  # the moto child inherits it
    out_dir = Path(tempfile.mkdtemp(prefix="sqs-bench-"))
    function = FunctionConfig(
        name="sink",
        code_dir=ROOT / "benchmarks" / "functions" / "sqs_sink",
        handler="app.handler",
        env={"OUT_DIR": str(out_dir)},
        reserved_concurrency=args.concurrency,
        prewarm=args.concurrency,
        timeout_s=30,
    )
    events = EventsConfig(
        queues=(QueueConfig("bench", visibility_timeout_s=180),),
        sqs_mappings=(
            SqsMappingConfig(
                function="sink", queue="bench", batch_size=args.batch_size, max_concurrency=args.concurrency
            ),
        ),
    )
    config = ServerConfig(port=0, functions=(function,), events=events)
    with EmulatorThread(config, sink=CollectingSink()) as emu:
        emulator = emu.emulator
        assert emulator is not None and emulator.events.endpoint is not None and emulator.events.mappings
        endpoint = emulator.events.endpoint.url
        (mapping,) = emulator.events.mappings.mappings.values()
        url = mapping.queue.url
        emu.wait_for(
            lambda e: (
                sum(env.describe()["state"] == "frozen" for env in e.functions["sink"].environments.values())
                == args.concurrency
            ),
            120,
        )
        moto_pid = emulator.events.endpoint.pid
        assert moto_pid is not None
        moto_before = cpu_of(moto_pid)
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        poller_before = mapping.poller_cpu_s
        shares = [args.messages // args.senders + (n < args.messages % args.senders) for n in range(args.senders)]
        firsts = [sum(shares[:n]) for n in range(args.senders)]
        senders = [
            subprocess.Popen(
                [sys.executable, "-c", SENDER, url, endpoint, str(first), str(share)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for first, share in zip(firsts, shares, strict=True)
            if share
        ]
        for sender in senders:
            assert sender.stdout is not None and sender.stdout.readline() == "ready\n"
        for sender in senders:
            assert sender.stdin is not None
            sender.stdin.write("go\n")
            sender.stdin.flush()
        times = [json.loads(sender.communicate()[0]) for sender in senders]
        assert all(sender.returncode == 0 for sender in senders), "a sender failed"
        sent = {"started": min(t["started"] for t in times), "ended": max(t["ended"] for t in times)}
        emu.wait_for(lambda e: mapping.counts["deleted"] >= args.messages, timeout_s=600)
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        moto_cpu_s = cpu_of(moto_pid) - moto_before
        poller_cpu_s = mapping.poller_cpu_s - poller_before
        counts = dict(mapping.counts)
    lines = [line.split() for path in out_dir.iterdir() for line in path.read_text().splitlines()]
    ids = [line[0] for line in lines]
    unique = set(ids)
    latencies_ms = [float(done) - float(sent_ms) for _, sent_ms, done in lines]
    last_done_s = max(float(line[2]) for line in lines) / 1000
    elapsed_s = last_done_s - sent["started"]
    process_cpu_s = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    figures = {
        "messages": args.messages,
        "batch_size": args.batch_size,
        "concurrency": args.concurrency,
        "senders": args.senders,
        "moto": "as released" if args.moto_as_is else "moto_sqs + moto_http",
        "processed": len(ids),
        "lost": args.messages - len(unique),
        "duplicates": len(ids) - len(unique),
        "messages_per_s": round(args.messages / elapsed_s, 1),
        "send_s": round(sent["ended"] - sent["started"], 2),
        "drain_s": round(elapsed_s, 2),
        "latency_p50_ms": round(percentile(latencies_ms, 50), 1),
        "latency_p99_ms": round(percentile(latencies_ms, 99), 1),
        "batches": counts["batches"],
        "mean_batch": round(len(ids) / max(1, counts["batches"]), 2),
        "poller_cpu_us_per_message": round(poller_cpu_s / args.messages * 1e6, 1),
        "emulator_cpu_us_per_message": round(process_cpu_s / args.messages * 1e6, 1),
        "sqs_server_cpu_us_per_message": round(moto_cpu_s / args.messages * 1e6, 1),
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:>28}: {value}")
    return 0 if figures["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
