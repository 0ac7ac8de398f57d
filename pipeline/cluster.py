"""Independent, content-addressed pieces of work on a Dask distributed cluster (``EXECUTOR=tcp://host:port``).

A stage hands `Cluster.run` a function and one argument tuple per piece of work, each named by its
content key (a frontier cell's `frontier.cell_key`). Each piece becomes a Dask task of that very key:
the workers compute and *return* the result, the stage writes it, so nothing needs a lock on a shared
filesystem; a worker that dies has its tasks run again on another (Dask's own retry); the same key
submitted twice is one task. Arrays many tasks read are sent to the cluster once (`Cluster.share`).
Why Dask and how to start a cluster: docs/cluster.md.
"""
import asyncio

from pipeline import UserError

CONNECT_TIMEOUT_S = 30     # how long a scheduler may take to answer before the stage gives up
KEY_PREFIX = "escape-snn"


class Cluster:
    """A connection to the Dask scheduler at ``address`` (one line and exit 2 when none answers within
    ``timeout`` seconds); a context manager that closes it."""

    def __init__(self, address, timeout=None):
        try:
            from distributed import Client
        except ImportError:  # an environment older than the pin
            raise UserError(f"EXECUTOR={address} needs dask distributed: pip install -c constraints.txt -e .") from None
        self.address = address
        self.timeout = timeout = timeout or CONNECT_TIMEOUT_S
        try:
            asyncio.run(asyncio.wait_for(_identity(address, timeout), timeout))
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise UserError(f"EXECUTOR={address}: no Dask scheduler answered within {timeout:g} s "
                            f"({type(exc).__name__}: {str(exc) or 'no answer'})") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.client.close()

    def workers(self):
        """How many workers the scheduler has (waiting up to the timeout for the first: workers may still be
        starting, e.g. on a Slurm allocation)."""
        try:
            self.client.wait_for_workers(1, timeout=self.timeout)
        except TimeoutError:
            raise UserError(f"EXECUTOR={self.address}: the scheduler has had no worker for {self.timeout:g} s "
                            f"(start them with `dask worker {self.address}`)") from None
        return len(self.client.nthreads())

    def share(self, value):
        """``value`` (an array every task of a stage reads) held on the cluster, sent once: pass what this
        returns among a job's arguments."""
        return self.client.scatter(value, hash=True)

    def run(self, function, jobs):
        """``function(*args)`` for each ``key: args`` of ``jobs`` on the workers (`share`d values among the
        args arrive as themselves); yields ``(key, result)`` as each finishes, so the caller keeps every
        finished result even if a later one fails."""
        from distributed import as_completed
        futures = {self.client.submit(function, *args, key=f"{KEY_PREFIX}-{key}", pure=True): key
                   for key, args in jobs.items()}
        try:
            for future in as_completed(futures, loop=self.client.loop):
                yield futures[future], future.result()
                future.release()
        finally:
            for future in futures:
                future.release()


async def _identity(address, timeout):
    """The scheduler's answer to ``identity``: a listener that accepts and never speaks would hold
    `distributed.Client` forever (it has no deadline after the connection), so it is asked first, with one."""
    from distributed.comm import connect
    comm = await connect(address, timeout=timeout)
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        comm.abort()
