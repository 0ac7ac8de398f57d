"""The fault suite: a run killed while writing, malformed inputs, out-of-range settings and two stages on
one RUN each end in one clear line (exit 2) or a correct recovery, never in a result file that lies.
(Damaged caches: test_caches, test_data; a killed STDB: test_stdb_resume; a malformed or unsupported
MODEL= .h5: test_user_model; a malformed .mat: test_data.)"""
import fcntl
import subprocess
import sys
import textwrap

import pytest

from pipeline import ROOT, results
from pipeline.__main__ import main


def one_line_error(capsys, *parts):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and all(p in err[0] for p in parts), err


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, OSError])
def test_a_writer_killed_halfway_leaves_the_old_result_and_no_temp_file(tmp_path, interruption):
    path = tmp_path / "convert_T10.json"
    results.write_json(path, {"snn_accuracy": 0.5})
    before = path.read_bytes()

    def dies_halfway(tmp):
        with open(tmp, "w") as f:
            f.write('{"snn_accuracy": 0.9')      # half a result
        raise interruption
    with pytest.raises(interruption):
        results.write_atomic_with(path, dies_halfway)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_malformed_npz_and_ini_end_in_one_line(sandbox, capsys):
    npz = sandbox / "broken.npz"
    npz.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["convert", f"OUT={sandbox}", f"DATA={npz}", "T=10", "RUN=f"]) == 2
    one_line_error(capsys, str(npz), "not a readable .npz")
    ini = sandbox / "broken.ini"
    ini.write_text("[simulation\nduration = 10\n")
    assert main(["convert", f"OUT={sandbox}", f"CONFIG={ini}", "RUN=f"]) == 2
    one_line_error(capsys, str(ini))
    ini.write_text("[simulation]\nduration = -3\n")
    assert main(["convert", f"OUT={sandbox}", f"CONFIG={ini}", "RUN=f"]) == 2
    one_line_error(capsys, str(ini))
    assert not (sandbox / "results" / "f").exists()


@pytest.mark.parametrize("argv, parts", [
    (["stdb", "T=10", "LEAK=2"], ["LEAK"]),
    (["stdb", "T=10", "LEAK=0"], ["LEAK"]),
    (["stdb", "T=10", "LR=-1"], ["LR"]),
    (["stdb", "T=10", "NEURON_LR=0"], ["NEURON_LR"]),
    (["convert", "T=10", "N=0"], ["N=0"]),
    (["sweep", "TS=10 -5"], ["TS=-5"]),
    (["latency", "TS=1", "L=0"], ["L=0"]),
    (["energy", "T=10", "MAC_PJ=-1", "AC_PJ=1"], ["MAC_PJ"]),
    (["convert", "T=10", "RUN=../elsewhere"], ["RUN="]),
    (["convert", "T=1e3"], ["T='1e3' is not an integer"]),
    (["convert", "T=10", "OUT=/dev/null"], ["OUT='/dev/null' is not a folder"]),
])
def test_out_of_range_settings_end_in_one_line_before_anything_runs(sandbox, capsys, argv, parts):
    assert main([argv[0], f"OUT={sandbox}", *argv[1:]]) == 2     # a later OUT= wins
    one_line_error(capsys, *parts)
    assert not (sandbox / "results").exists() or not any((sandbox / "results").iterdir())


HOLDER = textwrap.dedent("""
    import sys
    from pipeline import results
    results.hold_run("busy", results.Folders.under(sys.argv[1]))
    print("held", flush=True)
    sys.stdin.read()          # hold the RUN until the test closes our stdin
""")


def test_a_second_stage_on_a_busy_run_is_refused_in_one_line_and_runs_once_it_is_free(sandbox, tiny_npz, capsys):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(sandbox)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["convert", f"OUT={sandbox}", f"DATA={tiny_npz}", "T=10", "RUN=busy"]) == 2
        one_line_error(capsys, "RUN=busy is in use by another stage", f"pid {holder.pid}", "wait for it")
        assert not (sandbox / "results" / "busy").exists()
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    # the kernel released the lock with the holder: this process takes it
    results.hold_run("busy", results.Folders.under(sandbox))
    with open(sandbox / "results" / ".busy.lock", "a") as other, pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)     # ... and holds it against any other
