"""`distill` command line: a thin layer over distill.train / qat / export / evaluate / examples / curves.

The options of `train` and `qat` take their defaults from TrainConfig and QatConfig, so that each
default is written once.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import NoReturn

import typer

from distill.data import DataError
from distill.qat import QatConfig, finetune
from distill.train import TrainConfig, TrainingError

TRAIN = TrainConfig()
QAT = QatConfig()

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Train, distil, evaluate and export SharpCam models."
)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@app.callback()
def _main(log_level: str = typer.Option("INFO", help="Python logging level.")) -> None:
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")


@app.command()
def train(
    kind: str = typer.Option(TRAIN.kind, help="teacher or student."),
    model: str = typer.Option(
        json.dumps(TRAIN.model), help='Model config overrides as JSON, e.g. \'{"channels": 48, "blocks": 6}\'.'
    ),
    train_dir: Path = typer.Option(
        Path(TRAIN.train_dir), help="Folder of clean training images (a DIV2K *_HR folder works)."
    ),
    val_dir: Path = typer.Option(Path(TRAIN.val_dir), help="Folder of clean validation images."),
    out: Path = typer.Option(
        Path(TRAIN.out), help="Run folder: checkpoints, metrics.jsonl, curves.png. Resumes if it holds last.pt."
    ),
    cache: Path | None = typer.Option(
        None, help="Where degraded crop pools and teacher targets are cached [default: ~/.cache/sharpcam/distill]."
    ),
    crop: int = typer.Option(TRAIN.crop, help="Side of the square training crops, in pixels."),
    pool: int = typer.Option(TRAIN.pool, help="Degraded crops in the training pool."),
    mix: str = typer.Option(
        TRAIN.mix,
        help="Degradations of the crops: benchmark (the validation's), wide (adds in-camera sharpening) "
        "or sharp (adds sharp cameras).",
    ),
    batch: int = typer.Option(TRAIN.batch, help="Global batch (split across torchrun processes)."),
    steps: int = typer.Option(TRAIN.steps),
    lr: float = typer.Option(TRAIN.lr, help="Peak learning rate (cosine decay after the warm-up)."),
    weight_decay: float = typer.Option(TRAIN.weight_decay, help="AdamW weight decay."),
    warmup: int = typer.Option(TRAIN.warmup, help="Steps of linear learning-rate warm-up, again after a resume."),
    average_decay: float = typer.Option(
        TRAIN.average_decay,
        help="Decay of the running average of the weights, which validation and export use; 0 disables.",
    ),
    eval_every: int = typer.Option(TRAIN.eval_every),
    checkpoint_minutes: float = typer.Option(TRAIN.checkpoint_minutes),
    seed: int = typer.Option(TRAIN.seed),
    threads: int = typer.Option(TRAIN.threads, help="Torch CPU threads (0 = default)."),
    precision: str = typer.Option(
        TRAIN.precision,
        help="bf16 (autocast; fp32 weights), fp32, or auto: bf16 on CUDA and on CPUs with AMX, fp32 elsewhere.",
    ),
    teacher: Path | None = typer.Option(
        None, help="Teacher checkpoint: distil from it. Without it the student learns from ground truth alone."
    ),
    init: Path | None = typer.Option(
        None,
        help="Start a new run from this checkpoint's weights (e.g. weights/teacher.pt), of the same network or of "
        "the student --model grows: a context branch added or widened (one trained with expand 0), or 3×3 head "
        "and tail grown to kernel 5, or a teacher --model deepens by residual blocks; a run that resumes ignores it.",
    ),
    w_gt: float = typer.Option(TRAIN.w_gt, help="Weight of L1(student, ground truth)."),
    w_kd: float = typer.Option(TRAIN.w_kd, help="Weight of L1(student, teacher)."),
    w_feat: float = typer.Option(TRAIN.w_feat, help="Weight of the feature-mimicry L1 (0 disables the adapter)."),
) -> None:
    """Train a teacher, or a student (distilled when --teacher is given). Ctrl-C saves; rerun resumes."""
    from distill.train import train as run

    try:
        overrides = json.loads(model)
    except json.JSONDecodeError as e:
        _fail(f"--model is not valid JSON ({e.msg}); example: '{{\"channels\": 48}}'")
    cfg = TrainConfig(
        kind=kind,
        model=overrides,
        train_dir=str(train_dir),
        val_dir=str(val_dir),
        out=str(out),
        cache=str(cache or ""),
        crop=crop,
        pool=pool,
        mix=mix,
        batch=batch,
        steps=steps,
        lr=lr,
        weight_decay=weight_decay,
        warmup=warmup,
        average_decay=average_decay,
        eval_every=eval_every,
        checkpoint_minutes=checkpoint_minutes,
        seed=seed,
        threads=threads,
        precision=precision,
        teacher=str(teacher or ""),
        init=str(init or ""),
        w_gt=w_gt,
        w_kd=w_kd,
        w_feat=w_feat,
    )
    try:
        path = run(cfg)
    except (DataError, TrainingError, ValueError, TypeError) as e:
        _fail(str(e))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    typer.echo(f"done: {path}")


@app.command()
def examples(
    data_dir: Path = typer.Argument(..., help="Folder of clean images."),
    out: Path = typer.Option(Path("degradations.png"), help="PNG to write."),
    images: int = typer.Option(4, help="Rows (images) in the grid."),
    variants: int = typer.Option(5, help="Random degradations per image."),
    seed: int = typer.Option(0),
) -> None:
    """Write a PNG grid: each row a clean crop followed by random webcam degradations of it."""
    import cv2

    from distill.data import load_images
    from distill.degrade import example_grid

    try:
        imgs = load_images(data_dir)[:images]
    except DataError as e:
        _fail(str(e))
    cv2.imwrite(str(out), example_grid(imgs, variants, seed=seed))
    typer.echo(f"wrote {out}")


@app.command()
def export(
    checkpoint: Path = typer.Argument(..., help="A last.pt / best.pt written by `distill train`."),
    out: Path = typer.Argument(..., help="ONNX file to write (fp32)."),
    name: str = typer.Option("sharpcam", help="Model name stored in the ONNX metadata."),
    model_version: int = typer.Option(1, min=1, help="Model version stored in the ONNX metadata."),
    int8: Path | None = typer.Option(
        None, help="Students: also write the static INT8 model in the fast luma8 form here (what the runtime ships)."
    ),
    # The calibration `distill qat` fine-tunes for: the same images give the same ranges.
    calib_dir: Path = typer.Option(
        Path(QAT.calib_dir), help="Clean images; degraded with the benchmark chain for INT8 calibration."
    ),
    calib_images: int = typer.Option(QAT.calib_images),
    facts: str = typer.Option(
        "{}", help="Extra JSON metadata; training settings and the last validation score are read from the run."
    ),
    pt: Path | None = typer.Option(
        None, help="Also write a weights-only PyTorch checkpoint here (to ship, or to distil from)."
    ),
    raw_weights: bool = typer.Option(
        False, help="Export the raw weights instead of their running average (for runs whose average lags)."
    ),
    self_ensemble: bool = typer.Option(
        False, help="Teachers: average the outputs over the 8 flips/transposes of the input (8× the time)."
    ),
) -> None:
    """Export to the public ONNX contract (+ parity check), optionally INT8 as well."""
    from distill.data import benchmark_set
    from distill.export import export_onnx, quantize_luma8, slim_checkpoint

    for path in (out, int8, pt):
        if path is not None and not path.parent.is_dir():
            _fail(f"the folder {path.parent} for {path} does not exist; create it or name another")
    try:
        extra = json.loads(facts)
    except json.JSONDecodeError as e:
        _fail(f"--facts is not valid JSON ({e.msg})")
    try:
        result = export_onnx(
            checkpoint, out, name, model_version, extra, averaged=not raw_weights, self_ensemble=self_ensemble
        )
        typer.echo(f"wrote {out}: max |PyTorch − ONNX Runtime| = {result['max_abs_diff']:.2e}")
        if pt:
            slim_checkpoint(checkpoint, pt, averaged=not raw_weights)
            typer.echo(f"wrote {pt}")
        if int8:
            calib = [d for d, _ in benchmark_set(calib_dir)[:calib_images]]
            quantize_luma8(checkpoint, out, int8, calib, averaged=not raw_weights)
            typer.echo(f"wrote {int8} (calibrated on {len(calib)} degraded images from {calib_dir})")
    except (DataError, TrainingError) as e:
        _fail(str(e))


@app.command()
def qat(
    checkpoint: Path = typer.Argument(
        ..., help="A trained student: last.pt / best.pt of `distill train`, or a shipped .pt."
    ),
    out: Path = typer.Argument(..., help="Weights-only checkpoint to write; export it with `distill export --int8`."),
    steps: int = typer.Option(QAT.steps),
    lr: float = typer.Option(QAT.lr, help="Peak learning rate (cosine decay)."),
    train_dir: Path = typer.Option(Path(QAT.train_dir), help="Folder of clean training images."),
    val_dir: Path = typer.Option(Path(QAT.val_dir), help="Folder of clean validation images."),
    calib_dir: Path = typer.Option(Path(QAT.calib_dir), help="The images `distill export` calibrates INT8 on."),
    calib_images: int = typer.Option(QAT.calib_images, help="How many of them (as `distill export --calib-images`)."),
    cache: Path | None = typer.Option(
        None, help="Where the degraded crop pool is cached [default: ~/.cache/sharpcam/distill]."
    ),
    crop: int = typer.Option(QAT.crop, help="Side of the square training crops, in pixels."),
    pool: int = typer.Option(QAT.pool, help="Degraded crops in the training pool."),
    batch: int = typer.Option(QAT.batch),
    seed: int = typer.Option(QAT.seed),
) -> None:
    """Fine-tune a student through INT8 rounding (7-bit weights, uint8 activations)."""
    cfg = QatConfig(
        train_dir=str(train_dir),
        val_dir=str(val_dir),
        calib_dir=str(calib_dir),
        calib_images=calib_images,
        cache=str(cache or ""),
        crop=crop,
        pool=pool,
        batch=batch,
        steps=steps,
        lr=lr,
        seed=seed,
    )
    try:
        scores = finetune(checkpoint, out, cfg)
    except (DataError, TrainingError) as e:
        _fail(str(e))
    typer.echo(
        f"wrote {out}: validation PSNR float {scores['float']:.3f} dB, simulated INT8 "
        f"{scores['int8_before']:.3f} before and {scores['int8_after']:.3f} after fine-tuning"
    )


@app.command()
def evaluate(
    model: list[str] = typer.Option(
        [], help="NAME=PATH.onnx, repeatable (name one 'teacher' to get student-vs-teacher)."
    ),
    val_dir: Path = typer.Option(Path("../shared/data/val"), help="Folder of clean validation images."),
    video_dir: Path | None = typer.Option(None, help="Folder of video clips: their frames, degraded, are a third set."),
    out: Path = typer.Option(Path("benchmarks/quality"), help="Writes OUT.md and OUT.json."),
    bench_frames: int = typer.Option(
        0, help="Also time each model at 720p through `vcam bench` for N frames (0 skips)."
    ),
) -> None:
    """PSNR (RGB, Y) and SSIM of the input, unsharp mask, CAS and each model; student vs teacher."""
    from distill.evaluate import evaluate as run
    from distill.evaluate import speed, to_markdown, write_report

    models: dict[str, str | Path] = {}
    for item in model:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            _fail(f"--model {item!r} must be NAME=PATH to an existing .onnx file")
        models[name] = path
    try:
        report = run(val_dir, models, video_dir=video_dir)
    except DataError as e:
        _fail(str(e))
    if bench_frames > 0:
        report["speed"] = speed(models, bench_frames)
    write_report(report, out)
    typer.echo(to_markdown(report))


@app.command()
def curves(
    metrics: Path = typer.Argument(..., help="A metrics.jsonl (a run's, or a model's history in benchmarks/training)."),
    join: Path | None = typer.Option(
        None, help="A later stage's metrics.jsonl to append first, its steps and hours continuing METRICS'."
    ),
) -> None:
    """Draw METRICS' loss and validation curves next to it (metrics → curves, .png)."""
    from distill.curves import append_stage, curves_path, plot_curves

    for path in (metrics, join):
        if path is not None and not path.is_file():
            _fail(f"{path} does not exist; pass a metrics.jsonl written by `distill train`")
    try:
        if join is not None:
            typer.echo(f"{metrics} now ends at step {append_stage(metrics, join)}")
        else:
            plot_curves(metrics, curves_path(metrics))
    except ValueError as e:
        _fail(str(e))
    typer.echo(f"wrote {curves_path(metrics)}")
