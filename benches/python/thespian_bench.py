"""Python Thespian contestants of `cargo xtask bench`, one workload per process.

    python thespian_bench.py <simple|queue> <workload> <size>
    python thespian_bench.py <tcp|udp> <cross-process workload> <size>

`simple` is Thespian's simpleSystemBase, `queue` its multiprocQueueBase (one OS process per
actor), `tcp` and `udp` its multiprocTCPBase and multiprocUDPBase (one OS process per actor, an
admin daemon; on 127.0.0.1, with an Admin Port outside the ephemeral range). The workloads and
protocols are those of benches/thespian-bench (see common.rs and net.rs there): the output is
one line, `RESULT key=value ...`, `NA <reason>` or `UNAVAILABLE <reason>`.
"""

import gc
import os
import random
import socket
import sys
import time

try:
    from thespian.actors import Actor, ActorSystem
except ImportError as exc:  # pragma: no cover - reported to the harness
    print("UNAVAILABLE thespian is not installed: %s" % exc, flush=True)
    sys.exit(0)

WINDOW = 1024
BATCH = 256
SMALL = 16
LARGE = 64 * 1024
PATIENCE = 600  # seconds
BASES = {
    "simple": "simpleSystemBase",
    "queue": "multiprocQueueBase",
    "tcp": "multiprocTCPBase",
    "udp": "multiprocUDPBase",
}
# Cross-process one-way tell: window and acknowledgement batch per transport (as net.rs).
NET_WINDOW = {"tcp": (1024, 256), "udp": (128, 32)}
# Admin ports are picked below Linux's ephemeral range (32768-60999).
ADMIN_PORTS = (20000, 32000)


# Messages (module level so that multiprocQueueBase can pickle them).
class PingStart(object):
    def __init__(self, n, ponger):
        self.n = n
        self.ponger = ponger


class Ping(object):
    pass


class Pong(object):
    pass


class Done(object):
    def __init__(self, value):
        self.value = value


class TellStart(object):
    def __init__(self, n, size, consumer):
        self.n = n
        self.size = size
        self.consumer = consumer


class TellSetup(object):
    def __init__(self, n):
        self.n = n


class Ack(object):
    def __init__(self, count):
        self.count = count


class Data(object):
    def __init__(self, data):
        self.data = data


class Sky(object):
    def __init__(self, num, size):
        self.num = num
        self.size = size


class Sum(object):
    def __init__(self, value):
        self.value = value


class Spawn(object):
    def __init__(self, n):
        self.n = n


class NetStart(object):
    def __init__(self, n, size, window, consumer):
        self.n = n
        self.size = size
        self.window = window
        self.consumer = consumer


class Expect(object):
    def __init__(self, n, batch):
        self.n = n
        self.batch = batch


class Ready(object):
    pass


# Actors.
class Pinger(Actor):
    def receiveMessage(self, msg, sender):
        if isinstance(msg, Pong):
            self.left -= 1
            if self.left == 0:
                self.send(self.client, Done(self.n))
            else:
                self.send(self.ponger, Ping())
        elif isinstance(msg, PingStart):
            self.n = msg.n
            self.left = msg.n
            self.ponger = msg.ponger
            self.client = sender
            self.send(self.ponger, Ping())


class Ponger(Actor):
    def receiveMessage(self, msg, sender):
        if isinstance(msg, Ping):
            self.send(sender, Pong())


class Producer(Actor):
    def send_some(self, count):
        count = min(count, self.remaining)
        self.remaining -= count
        for _ in range(count):
            self.send(self.consumer, Data(b"\x01" * self.size))

    def receiveMessage(self, msg, sender):
        if isinstance(msg, Ack):
            self.send_some(msg.count)
        elif isinstance(msg, Done):
            self.send(self.client, msg)
        elif isinstance(msg, TellStart):
            self.remaining = msg.n
            self.size = msg.size
            self.consumer = msg.consumer
            self.client = sender
            self.send(self.consumer, TellSetup(msg.n))
            self.send_some(WINDOW)


class Consumer(Actor):
    def __init__(self, *args, **kwargs):
        super(Consumer, self).__init__(*args, **kwargs)
        self.expected = None
        self.got = 0
        self.since_ack = 0
        self.checksum = 0

    def receiveMessage(self, msg, sender):
        if isinstance(msg, Data):
            self.got += 1
            self.since_ack += 1
            self.checksum += msg.data[-1]
            if self.got == self.expected:
                self.finish(sender)
            elif self.since_ack == BATCH:
                self.since_ack = 0
                self.send(sender, Ack(BATCH))
        elif isinstance(msg, TellSetup):
            # multiprocQueueBase may deliver data before the set-up message.
            self.expected = msg.n
            if self.got == self.expected:
                self.finish(sender)

    def finish(self, producer):
        self.send(producer, Done(self.checksum))
        self.expected = None
        self.got = 0
        self.since_ack = 0
        self.checksum = 0


class NetProducer(Actor):
    """Cross-process one-way tell: at most `window` messages unacknowledged."""

    def pump(self):
        count = min(self.credit, self.remaining)
        self.credit -= count
        self.remaining -= count
        for _ in range(count):
            self.send(self.consumer, Data(b"\x01" * self.size))

    def receiveMessage(self, msg, sender):
        if isinstance(msg, Ack):
            self.credit += msg.count
            self.pump()
        elif isinstance(msg, NetStart):
            self.remaining = msg.n
            self.credit = msg.window
            self.size = msg.size
            self.consumer = msg.consumer
            self.pump()


class NetConsumer(Actor):
    """Counts; acknowledges every `batch`; tells the client when the last one arrived."""

    def receiveMessage(self, msg, sender):
        if isinstance(msg, Data):
            self.got += 1
            self.since_ack += 1
            self.checksum += msg.data[-1]
            if self.got == self.expected:
                self.send(self.client, Done(self.checksum))
            elif self.since_ack == self.batch:
                self.since_ack = 0
                self.send(sender, Ack(self.batch))
        elif isinstance(msg, Expect):
            self.expected = msg.n
            self.batch = msg.batch
            self.got = 0
            self.since_ack = 0
            self.checksum = 0
            self.client = sender
            self.send(sender, Ready())


class SkyNode(Actor):
    def receiveMessage(self, msg, sender):
        if isinstance(msg, Sum):
            self.total += msg.value
            self.pending -= 1
            if self.pending == 0:
                self.send(self.parent, Sum(self.total))
        elif isinstance(msg, Sky):
            if msg.size == 1:
                self.send(sender, Sum(msg.num))
            else:
                self.parent = sender
                self.pending = 10
                self.total = 0
                step = msg.size // 10
                for i in range(10):
                    child = self.createActor(SkyNode)
                    self.send(child, Sky(msg.num + i * step, step))


class Idle(Actor):
    def receiveMessage(self, msg, sender):
        pass


class Spawner(Actor):
    def receiveMessage(self, msg, sender):
        if isinstance(msg, Spawn):
            self.children = getattr(self, "children", [])
            for _ in range(msg.n):
                self.children.append(self.createActor(Idle))
            self.send(sender, Done(msg.n))


class Echo(Actor):
    def receiveMessage(self, msg, sender):
        if isinstance(msg, int):
            self.send(sender, msg)


def fail(text):
    sys.stderr.write("bench run failed: %s\n" % text)
    sys.exit(1)


def result(**figures):
    body = " ".join("%s=%.6f" % (k, v) for k, v in figures.items())
    print("RESULT " + body, flush=True)


def warmup(size):
    return max(size // 10, 1)


def cores():
    try:
        import os

        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        import multiprocessing

        return multiprocessing.cpu_count()


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def expect(reply, cls):
    if not isinstance(reply, cls):
        fail("expected %s, got %r" % (cls.__name__, reply))
    return reply


def ping_pong(asys, size, pairs):
    per_pair = max(size // pairs, 1)
    actors = [(asys.createActor(Pinger), asys.createActor(Ponger)) for _ in range(pairs)]

    def round_(n):
        start = time.perf_counter()
        for pinger, ponger in actors:
            asys.tell(pinger, PingStart(n, ponger))
        for _ in range(pairs):
            expect(asys.listen(PATIENCE), Done)
        return time.perf_counter() - start

    round_(warmup(per_pair))
    elapsed = round_(per_pair)
    result(rate=per_pair * pairs / elapsed, seconds=elapsed)


def tell(asys, size, nbytes):
    producer = asys.createActor(Producer)
    consumer = asys.createActor(Consumer)

    def round_(n):
        start = time.perf_counter()
        done = expect(asys.ask(producer, TellStart(n, nbytes, consumer), PATIENCE), Done)
        if done.value != n:
            fail("consumer counted %s of %s" % (done.value, n))
        return time.perf_counter() - start

    round_(warmup(size))
    elapsed = round_(size)
    result(rate=size / elapsed, seconds=elapsed)


def skynet_actors(leaves):
    return 1 if leaves <= 1 else 1 + 10 * skynet_actors(leaves // 10)


def skynet(asys, size):
    start = time.perf_counter()
    root = asys.createActor(SkyNode)
    total = expect(asys.ask(root, Sky(0, size), PATIENCE), Sum).value
    elapsed = time.perf_counter() - start
    if total != size * (size - 1) // 2:
        fail("SkyNet sum %s" % total)
    actors = skynet_actors(size)
    result(seconds=elapsed, rate=actors / elapsed, actors=actors)


def idle(asys, size):
    spawner = asys.createActor(Spawner)
    expect(asys.ask(spawner, Spawn(1), PATIENCE), Done)
    gc.collect()
    time.sleep(0.3)
    before = rss_bytes()
    expect(asys.ask(spawner, Spawn(size), PATIENCE), Done)
    gc.collect()
    time.sleep(0.3)
    after = rss_bytes()
    result(
        bytes=max(after - before, 0) / size,
        rss_before_mib=before / 1048576.0,
        rss_after_mib=after / 1048576.0,
    )


def percentile(sorted_samples, p):
    import math

    rank = int(math.ceil(p / 100.0 * len(sorted_samples)))
    return sorted_samples[min(max(rank, 1), len(sorted_samples)) - 1]


def ask(asys, size):
    echo = asys.createActor(Echo)

    def round_(n):
        latencies = []
        start = time.perf_counter()
        for i in range(n):
            t = time.perf_counter()
            reply = asys.ask(echo, i, PATIENCE)
            latencies.append(time.perf_counter() - t)
            if reply != i:
                fail("echo mismatch: %r" % (reply,))
        return latencies, time.perf_counter() - start

    round_(warmup(size))
    latencies, elapsed = round_(size)
    latencies.sort()
    result(
        rate=size / elapsed,
        p50_us=percentile(latencies, 50) * 1e6,
        p99_us=percentile(latencies, 99) * 1e6,
    )


def net_tell(asys, size, nbytes, window, batch):
    producer = asys.createActor(NetProducer)
    consumer = asys.createActor(NetConsumer)

    def round_(n):
        expect(asys.ask(consumer, Expect(n, batch), PATIENCE), Ready)
        start = time.perf_counter()
        asys.tell(producer, NetStart(n, nbytes, window, consumer))
        done = expect(asys.listen(PATIENCE), Done)
        elapsed = time.perf_counter() - start
        if done.value != n:
            fail("consumer counted %s of %s" % (done.value, n))
        return elapsed

    round_(warmup(size))
    elapsed = round_(size)
    result(rate=size / elapsed, mb_s=size * nbytes / elapsed / 1e6, seconds=elapsed)


def create(asys, size):
    """Top-level creates, each followed by one ask of the new actor."""

    def round_(n):
        start = time.perf_counter()
        for i in range(n):
            actor = asys.createActor(Echo)
            if asys.ask(actor, i, PATIENCE) != i:
                fail("echo mismatch")
        return time.perf_counter() - start

    round_(warmup(size))
    elapsed = round_(size)
    result(rate=size / elapsed, seconds=elapsed)


def free_admin_port():
    """A port free for TCP and UDP right now (probed by binding), from a random start."""
    lo, hi = ADMIN_PORTS
    first = random.randrange(lo, hi)
    for i in range(hi - lo):
        port = lo + (first - lo + i) % (hi - lo)
        ok = True
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(socket.AF_INET, kind)
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return port
    fail("no free admin port in %s" % (ADMIN_PORTS,))


NET_WORKLOADS = {
    "tcp": ("tcp-ping-pong", "tcp-tell-16b", "tcp-tell-64k", "tcp-create", "tcp-ask"),
    "udp": ("udp-ping-pong", "udp-tell-16b"),
}


def main(argv):
    if len(argv) != 3 or argv[0] not in BASES:
        fail("usage: thespian_bench.py <simple|queue|tcp|udp> <workload> <size>")
    base, workload, size = argv[0], argv[1], int(argv[2])
    if base in NET_WORKLOADS:
        if workload not in NET_WORKLOADS[base]:
            print("NA %s does not run %s" % (BASES[base], workload), flush=True)
            return
        # Everything on loopback; the actors' processes inherit this.
        os.environ["THESPIAN_BASE_IPADDR"] = "127.0.0.1"
        capabilities = {"Admin Port": free_admin_port()}
    else:
        capabilities = None
    if base == "queue" and workload == "idle":
        print(
            "NA multiprocQueueBase runs each actor in its own OS process; "
            "bytes per idle actor in one process does not apply",
            flush=True,
        )
        return
    try:
        asys = ActorSystem(BASES[base], capabilities, transientUnique=True)
    except Exception as exc:  # reported to the harness
        print("UNAVAILABLE %s: %s" % (BASES[base], exc), flush=True)
        return
    try:
        if workload == "ping-pong":
            ping_pong(asys, size, 1)
        elif workload == "ping-pong-cores":
            ping_pong(asys, size, cores())
        elif workload == "tell-16b":
            tell(asys, size, SMALL)
        elif workload == "tell-64k":
            tell(asys, size, LARGE)
        elif workload == "skynet":
            skynet(asys, size)
        elif workload == "idle":
            idle(asys, size)
        elif workload == "ask":
            ask(asys, size)
        elif workload in ("tcp-ping-pong", "udp-ping-pong"):
            ping_pong(asys, size, 1)
        elif workload in ("tcp-tell-16b", "udp-tell-16b"):
            net_tell(asys, size, SMALL, *NET_WINDOW[base])
        elif workload == "tcp-tell-64k":
            net_tell(asys, size, LARGE, *NET_WINDOW[base])
        elif workload == "tcp-create":
            create(asys, size)
        elif workload == "tcp-ask":
            ask(asys, size)
        else:
            fail("unknown workload %s" % workload)
    finally:
        asys.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
