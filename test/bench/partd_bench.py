"""Python partd's side of `npm run bench`: one store, one workload, one JSON line.

Run by test/bench/run.ts with Debian's python3 (python3-partd). The store is a
Python expression in which `tmpdir` names a fresh temporary directory.
"""
import json
import os
import resource
import shutil
import sys
import tempfile
import time

import partd  # noqa: F401  (used by the store expression)

POOL_BYTES = 1 << 20


def peak_rss_mb():
    """Peak RSS since the last reset_peak_rss (Linux VmHWM), else the process's peak."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        pass


def make_pool():
    # The same generator as test/src/Workload.ts, so both sides move the same bytes.
    pool = bytearray(POOL_BYTES)
    x = 2463534242
    for i in range(POOL_BYTES):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        r = x & 0xFF
        pool[i] = 97 + ((r * r) >> 12)
    return bytes(pool)


def serve(store):
    """partd's zmq Server over `store`, bound to loopback only, and a Client of it.

    partd's Server binds every interface (`tcp://*`) and advertises the host
    name; this binds 127.0.0.1 and advertises it, so the benchmark's traffic
    stays on loopback. The server is closed by `close_served` after the run.
    """
    import zmq
    from partd.zmq import Client, Server

    bind_any = zmq.Socket.bind_to_random_port
    zmq.Socket.bind_to_random_port = lambda self, _addr, *a, **k: bind_any(self, "tcp://127.0.0.1", *a, **k)
    try:
        server = Server(store, hostname="127.0.0.1")
    finally:
        zmq.Socket.bind_to_random_port = bind_any
    client = Client(server.address)
    client.served_by = server
    return client


def close_served(store):
    server = getattr(store, "served_by", None)
    if server is not None:
        store.close()
        server.close()


def main():
    spec = json.loads(sys.argv[1])
    keys, calls, size = spec["keys"], spec["calls"], spec["valueBytes"]
    pool = make_pool()
    names = ["key-%d" % k for k in range(keys)]

    def chunk(call, key):
        o = ((call * 7919 + key * 104729) * 8) % (POOL_BYTES - size)
        return pool[o:o + size]

    batches = [{names[k]: chunk(c, k) for k in range(keys)} for c in range(calls)]
    if spec.get("warmup", True):
        # The same untimed pass over the first quarter of the calls that the TypeScript side makes.
        warmdir = tempfile.mkdtemp(prefix="partd-bench-py-warm-")
        try:
            warm = eval(spec["python"], {"partd": partd, "tmpdir": warmdir, "serve": serve})
            for batch in batches[: (len(batches) + 3) // 4]:
                warm.append(batch)
            warm.get(names)
            warm.drop()
            close_served(warm)
        finally:
            shutil.rmtree(warmdir, ignore_errors=True)
    tmpdir = tempfile.mkdtemp(prefix="partd-bench-py-")
    try:
        # `serve(store)` in the expression runs the store behind partd's zmq Server and gives its Client.
        store = eval(spec["python"], {"partd": partd, "tmpdir": tmpdir, "serve": serve})
        reset_peak_rss()
        t0 = time.perf_counter()
        c0 = time.process_time()
        for batch in batches:
            store.append(batch)
        t1 = time.perf_counter()
        c1 = time.process_time()
        append_peak_rss = peak_rss_mb()
        values = store.get(names)
        t2 = time.perf_counter()
        problem = None
        for k in range(keys):
            expected = b"".join(chunk(c, k) for c in range(calls))
            if values[k] != expected:
                # partd's Buffer returns fast+slow, out of append order, once a key has spilled.
                problem = "%s: %d bytes, %s" % (
                    names[k], len(values[k]),
                    "same bytes out of order" if sorted(values[k]) == sorted(expected) else "wrong bytes")
                break
        total = keys * calls * size
        print(json.dumps({
            "appendSeconds": t1 - t0,
            "appendCpuSeconds": c1 - c0,
            "getSeconds": t2 - t1,
            "appendMBps": total / (t1 - t0) / 1e6,
            "getMBps": total / (t2 - t1) / 1e6,
            "peakRssMB": peak_rss_mb(),
            "appendPeakRssMB": append_peak_rss,
            "problem": problem,
        }))
        store.drop()
        close_served(store)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == "__main__":
    main()
