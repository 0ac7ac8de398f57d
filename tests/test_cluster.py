"""EXECUTOR=: the frontier's cells on a Dask cluster (two worker processes on 127.0.0.1) give the local run's
numbers, a worker killed mid-cell loses nothing, a rerun reuses every cell; bad addresses and silent
schedulers end in one line."""
import json
import os
import signal
import socket
import threading
import time

import pytest

import pipeline  # noqa: F401  (legacy Keras before TensorFlow loads)
from pipeline import UserError, cluster, settings as settings_module
from pipeline.stages import frontier as stage

GRID = ["--data", None, "--width", "4", "--epochs", "2", "--timesteps-list", "2 4", "--num-samples", "20",
        "--codings", "poisson rate", "--gains", "1 4", "--sparsities", "1"]


def run(tiny_npz, name, *extra):
    argv = ["frontier", "--run", name, *[str(tiny_npz) if a is None else a for a in GRID], *extra]
    return stage.main(settings_module.parse(argv))


def cells(folder):
    """Every cell file of a run, without its wall time."""
    out = {}
    for path in sorted((folder / stage.CELLS).glob("*.json")):
        cell = json.loads(path.read_text())
        cell.pop("seconds")
        out[path.name] = cell
    return out


def kill_one_worker_mid_cell(address, killed, stop):
    """Watch the workers; the first time one is simulating a frontier cell, SIGKILL its process (its nanny
    starts a new one) and record the pid and the cell."""
    from distributed import Client

    def executing(dask_worker):
        return os.getpid(), [str(ts.key) for ts in dask_worker.state.executing]

    with Client(address, timeout=30, set_as_default=False) as client:
        while not stop.is_set() and not killed:
            for pid, keys in client.run(executing).values():
                cells_running = [k for k in keys if k.startswith(f"{cluster.KEY_PREFIX}-frontier-")]
                if cells_running:
                    os.kill(pid, signal.SIGKILL)
                    killed.append((pid, cells_running[0]))
                    break
            time.sleep(0.1)


@pytest.mark.slow  # three frontier runs, trainings and two TensorFlow worker processes
def test_cells_on_two_dask_workers_equal_the_local_run_even_when_a_worker_is_killed(tiny_npz, sandbox):
    from distributed import LocalCluster
    local = run(tiny_npz, "local")
    threads = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}   # 2 workers on a small machine
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", scheduler_port=0,
                      dashboard_address=None, env=threads) as workers:
        address = workers.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        killed, stop = [], threading.Event()
        killer = threading.Thread(target=kill_one_worker_mid_cell, args=(address, killed, stop), daemon=True)
        killer.start()
        try:
            remote = run(tiny_npz, "cluster", "--executor", address)
        finally:
            stop.set()
            killer.join(timeout=30)
        assert killed, "no worker was killed while it simulated a cell"
        again = run(tiny_npz, "cluster", "--executor", address)   # a rerun reuses every finished cell
    results = sandbox / "results"
    assert cells(results / "cluster") == cells(results / "local")   # same cells, same numbers
    for key in ("rows", "chosen", "pareto_front", "cheapest_within_1pp_test", "ann", "conversion_thresholds"):
        assert remote[key] == local[key], key
    assert remote["cells"] == local["cells"] and local["cells"]["reused"] == 0
    assert again["cells"] == {"simulated": 0, "reused": local["cells"]["simulated"], "folder": stage.CELLS}
    assert again["rows"] == local["rows"]


def test_a_bad_executor_address_or_a_stage_without_one_is_one_line_and_exit_2(capsys):
    from pipeline.__main__ import main
    for bad in ("EXECUTOR=dask", "EXECUTOR=tcp://host", "EXECUTOR=tcp://host:99999", "EXECUTOR=udp://h:8786"):
        assert main(["frontier", "TS=2", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "EXECUTOR" in err and "tcp://host:port" in err
    assert settings_module.parse(["frontier", "EXECUTOR=tcp://node-1.cluster:8786"]).executor == \
        "tcp://node-1.cluster:8786"
    assert settings_module.parse(["frontier"]).executor == "local"
    assert main(["sweep", "TS=50", "EXECUTOR=tcp://node-1:8786"]) == 2   # not run here instead, silently
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "only frontier" in err


def test_a_scheduler_that_does_not_answer_is_one_line_and_exit_2(monkeypatch, capsys):
    from pipeline.__main__ import main
    with socket.socket() as silent:      # accepts connections on loopback, never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        start = time.perf_counter()
        with pytest.raises(UserError, match="no Dask scheduler answered within 1 s"):
            cluster.Cluster(address, timeout=1)
        assert time.perf_counter() - start < 15
        monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1)
        assert main(["frontier", "TS=2", f"EXECUTOR={address}"]) == 2   # before any training
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and address in err
