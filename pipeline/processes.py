"""Measuring one piece of work on its own: a spawned child process, and its peak memory."""
import multiprocessing
import resource

from pipeline import UserError


def peak_memory_mb():
    """Peak resident memory of this process so far (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _child(target, args, queue):
    try:
        queue.put(target(*args))
    except Exception as exc:  # reported by the parent as one line
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def in_child(target, *args, what=None):
    """Run ``target(*args)`` in a fresh (spawned) process, so its wall time and peak memory are
    its own, and return its result; a failure becomes one UserError line (``what`` failed: ...)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_child, args=(target, args, queue))
    child.start()
    outcome = queue.get()
    child.join()
    if "error" in outcome:
        raise UserError(f"{what or target.__name__.strip('_')} failed: {outcome['error']}")
    return outcome
