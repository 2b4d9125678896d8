"""Merge throughput: `ecgfm data merge` against joining the same datasets' shards from Python.

The Python reference copies each shard one at a time and checks its size and SHA-256 against the
input manifest, as `ecgfm data merge` does (and writes no manifest, so it does less): on a local
disk it reads, hashes and writes the file; on S3 it does `get_object`, hashes, `put_object`
(boto3). A second S3 reference, boto3's server-side `copy_object` one shard at a time without any
check, shows what the server's copy alone costs. ecgfm runs three ways: every shard through this
process one at a time (`--stream-copy --jobs 1`, how merge worked before), four at a time
(`--stream-copy --jobs 4`), and the default (four at a time, the store copying where it can: a
hard link on one disk, CopyObject in one bucket, each copy read back to check it). On S3 it
then reads the merged dataset back with `ecgfm data inspect` (every shard fetched, hashed and its
quality columns decoded, the next shards fetched meanwhile) against the same done from Python
with boto3 and pyarrow.
S3 is a moto server on localhost (`pip install 'moto[server]' boto3`); `--latency-ms L` puts a
proxy in front of it that delays every byte by half of L each way (a link of round-trip time L
and unlimited bandwidth; a bucket in another region is 20-80 ms away). Local reads come from the page cache after the
first run, for both sides alike. Prints seconds (median of the repeats), the ratio and the
local file system's type (the ratio depends on it). Without boto3, moto or pyarrow the S3 part
is skipped, saying so.

Usage: python3 bench/merge_bench.py PATH/TO/ecgfm DATASET DATASET [...] [--repeats N] [--no-s3]
       [--latency-ms L]
"""
import argparse
import asyncio
import hashlib
import importlib.util
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def manifest(folder: str) -> dict:
    with open(os.path.join(folder, "manifest.json")) as f:
        return json.load(f)


def timed(repeats: int, run) -> float:
    """Median seconds of `run(i)` over the repeats (each with its own output)."""
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        run(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def checked(data: bytes, shard: dict, where: str) -> bytes:
    if len(data) != shard["bytes"] or hashlib.sha256(data).hexdigest() != shard["sha256"]:
        sys.exit(f"{where}: shard differs from its manifest")
    return data


def python_local(inputs: list, out: str) -> None:
    os.makedirs(os.path.join(out, "shards"))
    n = 0
    for folder in inputs:
        for shard in manifest(folder)["shards"]:
            source = os.path.join(folder, shard["path"])
            with open(source, "rb") as f:
                data = checked(f.read(), shard, source)
            with open(os.path.join(out, "shards", f"shard-{n:05}.parquet"), "wb") as f:
                f.write(data)
            n += 1


def ecgfm_merge(ecgfm: str, inputs: list, out: str, flags: list, env=None) -> None:
    subprocess.run([ecgfm, "data", "merge", *inputs, "--out", out, *flags], check=True,
                   stdout=subprocess.DEVNULL, env=env)


WAYS = [("ecgfm, through here, 1 at a time", ["--stream-copy", "--jobs", "1"]),
        ("ecgfm, through here, 4 at a time", ["--stream-copy", "--jobs", "4"]),
        ("ecgfm, default (the store copies)", [])]


def report(rows: list, reference: float) -> None:
    for name, seconds in rows:
        print(f"  {name:<40} {seconds:8.3f} s   {reference / seconds:6.2f}x the Python reference")


def bench_local(ecgfm: str, inputs: list, repeats: int, mb: float) -> None:
    # On the inputs' file system, so that the default can hard-link.
    scratch = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(inputs[0])))
    try:
        at = lambda name, i: os.path.join(scratch, f"{name}-{i}")
        rows = [("Python: read, SHA-256, write", timed(repeats, lambda i: python_local(inputs, at("py", i))))]
        for k, (name, flags) in enumerate(WAYS):
            rows.append((name, timed(repeats, lambda i: ecgfm_merge(ecgfm, inputs, at(f"e{k}", i), flags))))
        fs = subprocess.run(["stat", "-f", "-c", "%T", scratch], capture_output=True, text=True)
        print(f"local disk ({fs.stdout.strip() or 'file system unknown'}), {mb:.1f} MB of shards:")
        report(rows, rows[0][1])
    finally:
        shutil.rmtree(scratch)


def manifest_of(s3, prefix: str) -> dict:
    return json.loads(s3.get_object(Bucket="bench", Key=f"{prefix}/manifest.json")["Body"].read())


def pa_buffer(data: bytes):
    import pyarrow as pa

    return pa.BufferReader(data)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def delaying_proxy(target_port: int, rtt_s: float) -> int:
    """Starts a TCP proxy to `target_port` on a thread that acts as a link with round-trip time
    `rtt_s` and no bandwidth limit: every chunk of bytes, either way, is passed on half the round
    trip after it arrived (chunks do not wait for each other). Returns the proxy's port."""
    port = free_port()

    async def pipe(reader, writer):
        queue = asyncio.Queue()

        async def send():
            while (item := await queue.get()) is not None:
                due, data = item
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                writer.write(data)
                await writer.drain()
            writer.close()

        sender = asyncio.create_task(send())
        while data := await reader.read(1 << 16):
            queue.put_nowait((time.monotonic() + rtt_s / 2, data))
        queue.put_nowait(None)
        await sender

    async def serve(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, server_writer),
                             pipe(server_reader, client_writer), return_exceptions=True)

    async def main():
        server = await asyncio.start_server(serve, "127.0.0.1", port)
        await server.serve_forever()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    return port


def bench_s3(ecgfm: str, inputs: list, repeats: int, mb: float, latency_ms: float) -> None:
    import boto3

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if latency_ms > 0:
            port = delaying_proxy(port, latency_ms / 1000)
        endpoint = f"http://127.0.0.1:{port}"
        creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true"}
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
        for attempt in range(100):
            try:
                s3.create_bucket(Bucket="bench")
                break
            except Exception:
                if attempt == 99:
                    raise
                time.sleep(0.2)
        keys = []
        for k, folder in enumerate(inputs):
            m = manifest(folder)
            for name in ["manifest.json"] + [s["path"] for s in m["shards"]]:
                s3.upload_file(os.path.join(folder, name), "bench", f"in/{k}/{name}")
            keys += [(f"in/{k}/{s['path']}", s) for s in m["shards"]]

        def python_get_put(i):
            for n, (key, shard) in enumerate(keys):
                data = checked(s3.get_object(Bucket="bench", Key=key)["Body"].read(), shard, key)
                s3.put_object(Bucket="bench", Key=f"py-{i}/shards/shard-{n:05}.parquet", Body=data)

        def python_copy(i):
            for n, (key, _) in enumerate(keys):
                s3.copy_object(Bucket="bench", Key=f"pycopy-{i}/shards/shard-{n:05}.parquet",
                               CopySource={"Bucket": "bench", "Key": key})

        env = {**os.environ, **creds}
        urls = [f"s3://bench/in/{k}" for k in range(len(inputs))]
        rows = [("Python: get_object, SHA-256, put_object", timed(repeats, python_get_put)),
                ("Python: copy_object (no check)", timed(repeats, python_copy))]
        for k, (name, flags) in enumerate(WAYS):
            rows.append((name, timed(repeats, lambda i: ecgfm_merge(
                ecgfm, urls, f"s3://bench/e{k}-{i}", flags, env))))
        print(f"S3 (moto on localhost, {latency_ms:g} ms round trip), {mb:.1f} MB of shards:")
        report(rows, rows[0][1])

        # Reading the merged dataset back: every shard fetched, hashed and its quality columns
        # decoded (`ecgfm data inspect`), against the same from Python one shard at a time.
        import pyarrow.parquet as pq

        merged = manifest_of(s3, "e2-0")

        def python_inspect(_):
            for shard in merged["shards"]:
                key = f"e2-0/{shard['path']}"
                data = checked(s3.get_object(Bucket="bench", Key=key)["Body"].read(), shard, key)
                pq.read_table(pa_buffer(data), columns=["quality_score", "quality_flags"])

        rows = [("Python: get_object, SHA-256, pyarrow", timed(repeats, python_inspect)),
                ("ecgfm data inspect", timed(repeats, lambda _: subprocess.run(
                    [ecgfm, "data", "inspect", "s3://bench/e2-0"], check=True,
                    stdout=subprocess.DEVNULL, env=env)))]
        print("  reading the merged dataset back:")
        report(rows, rows[0][1])
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ecgfm")
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-s3", action="store_true")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    shards = [s for d in args.datasets for s in manifest(d)["shards"]]
    mb = sum(s["bytes"] for s in shards) / 1e6
    print(f"{len(args.datasets)} datasets, {len(shards)} shards")
    bench_local(args.ecgfm, args.datasets, args.repeats, mb)
    missing = [m for m in ("boto3", "moto", "pyarrow") if importlib.util.find_spec(m) is None]
    if not args.no_s3 and missing:
        print(f"S3 skipped: {sys.executable} lacks {', '.join(missing)}; "
              "pip install 'moto[server]' boto3 pyarrow")
    elif not args.no_s3:
        bench_s3(args.ecgfm, args.datasets, args.repeats, mb, args.latency_ms)


if __name__ == "__main__":
    main()
