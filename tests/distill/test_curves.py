import json

from typer.testing import CliRunner

from distill.cli import app


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_later_stage_joins_a_models_history_and_its_curves_are_redrawn(tmp_path):
    history, run = tmp_path / "student-hq-metrics.jsonl", tmp_path / "metrics.jsonl"
    past = [{"step": 100, "time": 50.0, "loss": 0.05}, {"step": 100, "time": 50.0, "val_psnr": 27.0}]
    _write(history, past)
    _write(run, [{"step": 10, "time": 4.0, "loss": 0.04}, {"step": 20, "time": 8.25, "val_psnr": 27.1}])

    r = CliRunner().invoke(app, ["curves", str(history), "--join", str(run)])

    assert r.exit_code == 0, r.output
    assert "now ends at step 120" in r.output
    joined = _rows(history)
    assert [(row["step"], row["time"]) for row in joined[2:]] == [(110, 54.0), (120, 58.2)]
    assert joined[:2] == past and joined[3]["val_psnr"] == 27.1
    assert (tmp_path / "student-hq-curves.png").stat().st_size > 0


def test_a_run_folders_metrics_are_drawn_beside_them(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    _write(metrics, [{"step": s, "time": s / 2, "loss": 1 / s, "val_psnr": 26 + s / 100} for s in (10, 20, 30)])
    r = CliRunner().invoke(app, ["curves", str(metrics)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "curves.png").stat().st_size > 0


def test_what_is_not_a_metrics_file_is_refused_and_the_history_left_as_it_was(tmp_path):
    history, bad, run = tmp_path / "metrics.jsonl", tmp_path / "notes.txt", tmp_path / "stage.jsonl"
    _write(history, [{"step": 100, "time": 50.0, "val_psnr": 27.0}])
    bad.write_text('{"step": 10, "time": 1.0}\n27.1\n')
    _write(run, [{"step": 10, "time": 4.0, "loss": 0.04}])
    assert CliRunner().invoke(app, ["curves", str(history), "--join", str(run)]).exit_code == 0
    before = history.read_text()
    for args, says in (
        (["curves", str(history), "--join", str(bad)], f"{bad} line 2 is not a row"),
        (["curves", str(bad), "--join", str(history)], f"{bad} line 2 is not a row"),
        (["curves", str(tmp_path / "missing.jsonl")], "does not exist"),
        (["curves", str(history), "--join", str(history)], "cannot be joined onto itself"),
        (["curves", str(history), "--join", str(run)], "already ends with"),  # the same stage twice
    ):
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 2 and isinstance(r.exception, SystemExit)  # a message, not a traceback
        assert says in r.output
    assert history.read_text() == before
