"""EXECUTOR=: the frontier's cells and a two-seed sweep's runs on a Dask cluster (two worker processes on
127.0.0.1) give the local run's numbers, a worker killed mid-cell loses nothing, a rerun reuses every cell;
bad addresses and silent schedulers end in one line."""
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


def run(tiny_npz, out, name, *extra):
    argv = ["frontier", f"OUT={out}", "--run", name, *[str(tiny_npz) if a is None else a for a in GRID], *extra]
    return stage.main(settings_module.parse(argv))


@pytest.fixture(scope="module")
def shared_out(tmp_path_factory):
    """OUT of this module's cluster runs: the frontier's seed-0 ANN, trained once, is the sweep's too (the model
    cache is keyed by data, width, epochs and seed), which saves the sweep test a training."""
    return tmp_path_factory.mktemp("cluster-out")


@pytest.fixture(scope="module")
def workers():
    """A two-worker Dask cluster on 127.0.0.1 (processes, one thread and one TensorFlow thread each), shared by
    this module's cluster tests: its scheduler's address."""
    from distributed import LocalCluster
    threads = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}   # 2 workers on a small machine
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", scheduler_port=0,
                      dashboard_address=None, env=threads) as cluster_:
        assert cluster_.scheduler_address.startswith("tcp://127.0.0.1:")
        yield cluster_.scheduler_address


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
def test_cells_on_two_dask_workers_equal_the_local_run_even_when_a_worker_is_killed(tiny_npz, shared_out, workers):
    local = run(tiny_npz, shared_out, "local")
    killed, stop = [], threading.Event()
    killer = threading.Thread(target=kill_one_worker_mid_cell, args=(workers, killed, stop), daemon=True)
    killer.start()
    try:
        remote = run(tiny_npz, shared_out, "cluster", "--executor", workers)
    finally:
        stop.set()
        killer.join(timeout=30)
    assert killed, "no worker was killed while it simulated a cell"
    again = run(tiny_npz, shared_out, "cluster", "--executor", workers)   # a rerun reuses every finished cell
    results = shared_out / "results"
    assert cells(results / "local") and cells(results / "cluster") == cells(results / "local")   # same cells, numbers
    for key in ("rows", "chosen", "pareto_front", "cheapest_within_1pp_test", "ann", "conversion_thresholds"):
        assert remote[key] == local[key], key
    assert remote["cells"] == local["cells"] and local["cells"]["reused"] == 0
    assert again["cells"] == {"simulated": 0, "reused": local["cells"]["simulated"], "folder": stage.CELLS}
    assert again["rows"] == local["rows"]


@pytest.mark.slow  # two seeds' trainings (shared by both runs, and seed 0's with the frontier's) and their T values
def test_a_two_seed_sweep_on_two_dask_workers_equals_the_local_run(tiny_npz, sandbox, shared_out, workers, monkeypatch,
                                                                    capsys):
    from pipeline.__main__ import main
    from pipeline.toolbox import configs
    template = sandbox / "poisson.ini"   # Poisson input: one run per T and seed, four tasks
    template.write_text(configs.TEMPLATE.read_text().replace("poisson_input = False", "poisson_input = True"))
    monkeypatch.setattr(configs, "TEMPLATE", template)   # rendered here: the workers read the rendered inis
    sweep = ["sweep", f"OUT={shared_out}", f"DATA={tiny_npz}", "WIDTH=4", "EPOCHS=2", "N=20", "TS=4 8", "SIM=fast",
             "SEEDS=0 1"]
    assert main([*sweep, "RUN=sweep-local"]) == 0
    assert main([*sweep, "RUN=sweep-remote", f"EXECUTOR={workers}"]) == 0
    assert "4 runs to 2 Dask workers" in capsys.readouterr().out
    results = shared_out / "results"

    def runs(name):
        """Every seed's convert_T<T>_fast.json but what names its RUN or times it."""
        found = {}
        for path in sorted(results.glob(f"{name}-seed*/convert_T*_fast.json")):
            record = json.loads(path.read_text())
            for key in ("wall_seconds", "toolbox_seconds", "config", "config_sha256"):
                record.pop(key)
            found[f"{path.parent.name.removeprefix(name)}/{path.name}"] = record
        return found

    assert len(runs("sweep-local")) == 4 and runs("sweep-remote") == runs("sweep-local")
    local, remote = (json.loads((results / name / "table2_seeds.json").read_text())
                     for name in ("sweep-local", "sweep-remote"))
    assert [[{k: v for k, v in e.items() if k != "run"} for e in r["per_seed"]] for r in remote["rows"]] == \
        [[{k: v for k, v in e.items() if k != "run"} for e in r["per_seed"]] for r in local["rows"]]
    assert [r["across"] for r in remote["rows"]] == [r["across"] for r in local["rows"]]
    assert main([*sweep, "RUN=sweep-remote", f"EXECUTOR={workers}"]) == 0   # a rerun sends nothing
    assert "runs to" not in capsys.readouterr().out


def test_a_bad_executor_address_or_a_stage_without_one_is_one_line_and_exit_2(capsys):
    from pipeline.__main__ import main
    for bad in ("EXECUTOR=dask", "EXECUTOR=tcp://host", "EXECUTOR=tcp://host:99999", "EXECUTOR=udp://h:8786"):
        assert main(["frontier", "TS=2", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "EXECUTOR" in err and "tcp://host:port" in err
    assert settings_module.parse(["frontier", "EXECUTOR=tcp://node-1.cluster:8786"]).executor == \
        "tcp://node-1.cluster:8786"
    assert settings_module.parse(["frontier"]).executor == "local"
    assert main(["latency", "TS=2", "EXECUTOR=tcp://node-1:8786"]) == 2   # not run here instead, silently
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "only sweep and frontier" in err


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
