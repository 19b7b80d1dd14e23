"""The ``chainrule`` command: train, evaluate and sample models on the bundled real data.

    chainrule train mlp|cnn|gpt [options]      train into runs/<model>/ (or --out)
    chainrule evaluate runs/<run>              test metrics of a saved model
    chainrule sample runs/<gpt-run> --prompt "ROMEO:" --tokens 300 --temperature 0.8
    chainrule demo                             a short gpt run, then a sample of its text
    chainrule diagnose                         the vanishing-gradient experiment, into runs/diagnose/
    chainrule diagnose --rnn                   gradients through time: tanh RNN vs LSTM, into runs/diagnose-rnn/
    chainrule graph runs/<run>                 render the backward graph of a run's loss
    chainrule import-hf FOLDER --out runs/<n>  a Hugging Face GPT-2 folder as a run (sample, evaluate, train --resume)
    chainrule export runs/<run> --format hf|onnx [--out PATH]   a run's model for transformers or onnxruntime

``train``, ``evaluate``, ``sample``, ``demo`` and ``diagnose`` take ``--device cpu|cuda``: the models, their
data and every step live there (it is the default device for the command, as ``torch.set_default_device``);
checkpoints are written from host copies, so a run trained on a GPU evaluates and samples on the CPU.

Errors print one line and exit with status 2; no tracebacks for bad input. The command keeps freed
memory in the process for reuse between steps (:func:`chainrule.backend.allocator.keep_freed_memory`).

Under ``mpiexec -n N chainrule train ...`` the N processes train one model together (data parallel over
MPI, ``chainrule.distributed``): ``--batch-size`` stays the global batch, rank 0 writes the run folder,
an error on any rank ends them all. The other commands run in one process and refuse under ``mpiexec``.
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main"]

# command-line option -> (section of the recipe, key, type, help text)
_MODEL_OPTIONS = {
    "width": ("model", "width", int, "hidden units per layer (mlp)"),
    "depth": ("model", "depth", int, "hidden layers (mlp)"),
    "n_layer": ("model", "n_layer", int, "transformer blocks (gpt)"),
    "n_head": ("model", "n_head", int, "attention heads (gpt)"),
    "n_embd": ("model", "n_embd", int, "embedding width (gpt)"),
    "block_size": ("model", "block_size", int, "context length (gpt)"),
    "dropout": ("model", "dropout", float, "dropout probability"),
}
_TRAIN_OPTIONS = {
    "epochs": ("train", "epochs", int, "passes over the training set (mlp, cnn)"),
    "steps": ("train", "steps", int, "optimizer steps (gpt)"),
    "batch_size": ("train", "batch_size", int, "examples per step"),
    "lr": ("train", "lr", float, "peak learning rate"),
    "weight_decay": ("train", "weight_decay", float, "AdamW weight decay"),
    "seed": ("train", "seed", int, "random seed (weights, shuffling, sampling)"),
    "eval_interval": ("train", "eval_interval", int, "steps between validations (gpt)"),
    "text_file": ("train", "text_file", str, "train on this UTF-8 text file instead of tiny Shakespeare (gpt)"),
    "seq_len": ("train", "seq_len", int, "training window length, at most block_size (gpt)"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chainrule", description="Train, evaluate and sample chainrule models.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model on its bundled data set")
    train.add_argument("model", help="mlp (digits), cnn (mnist5k) or gpt (tiny Shakespeare)")
    train.add_argument("--out", help="run folder (default runs/<model>)")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    train.add_argument("--quiet", action="store_true", help="no progress output")
    train.add_argument("--compile", action="store_true",
                       help="replay each training step as a compiled program (chainrule.compile; same results)")
    for name, (_, _, kind, text) in {**_MODEL_OPTIONS, **_TRAIN_OPTIONS}.items():
        train.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help=text)

    evaluate = sub.add_parser("evaluate", help="report test metrics of a saved run")
    evaluate.add_argument("run", help="a run folder, e.g. runs/mlp")

    sample = sub.add_parser("sample", help="generate text with a trained gpt run")
    sample.add_argument("run", help="a gpt run folder, e.g. runs/gpt")
    sample.add_argument("--prompt", default="ROMEO:")
    sample.add_argument("--tokens", type=int, default=300)
    sample.add_argument("--temperature", type=float, default=0.8)
    sample.add_argument("--top-k", dest="top_k", type=int, default=None)
    sample.add_argument("--seed", type=int, default=0)

    demo = sub.add_parser("demo", help="train a small gpt for a few minutes, then sample from it")
    demo.add_argument("--out", default="runs/demo")
    demo.add_argument("--steps", type=int, default=600)

    diagnose = sub.add_parser("diagnose", help="deep sigmoid vs ReLU vs residual+LayerNorm MLPs: see gradients vanish")
    diagnose.add_argument("--out", default=None, help="default runs/diagnose (runs/diagnose-rnn with --rnn)")
    diagnose.add_argument("--rnn", action="store_true",
                          help="instead: a tanh RNN and an LSTM on the adding problem, gradient reaching each time step")
    diagnose.add_argument("--seq-len", type=int, default=60, help="with --rnn: sequence length")
    diagnose.add_argument("--steps", type=int, default=300)
    diagnose.add_argument("--depth", type=int, default=20)
    diagnose.add_argument("--width", type=int, default=64)
    diagnose.add_argument("--seed", type=int, default=0)

    for command in (train, evaluate, sample, demo, diagnose):
        command.add_argument("--device", default=None, help="cpu (default) or cuda: where the model, data and steps live")

    graph = sub.add_parser("graph", help="render the backward graph of a run's loss (SVG, or .dot without graphviz)")
    graph.add_argument("run", help="a run folder, e.g. runs/mlp")
    graph.add_argument("--out", help="output file (.svg, .png or .dot; default <run>/graph.svg)")
    graph.add_argument("--depth", type=int, default=None, help="module nesting depth to show (default: what fits)")

    import_hf = sub.add_parser("import-hf", help="make a gpt run folder from a Hugging Face GPT-2 folder")
    import_hf.add_argument("folder", help="a transformers GPT-2 folder (config.json, model.safetensors, vocab.json, merges.txt)")
    import_hf.add_argument("--out", required=True, help="the run folder to create, e.g. runs/gpt2")
    import_hf.add_argument("--overwrite", action="store_true", help="replace an existing run folder")

    export = sub.add_parser("export", help="write a run's model as a Hugging Face folder or an ONNX file")
    export.add_argument("run", help="a run folder, e.g. runs/gpt")
    export.add_argument("--format", dest="fmt", required=True, choices=("hf", "onnx"))
    export.add_argument("--out", help="output folder (hf) or file (onnx); default <run>/hf or <run>/model.onnx")
    export.add_argument("--opset", type=int, default=18, help="ONNX opset version (17 to 21)")
    export.add_argument("--checkpoint", help="checkpoint file in the run (default best.safetensors, else last)")
    export.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip running the ONNX file in onnxruntime against chainrule's forward")
    return parser


def _overrides(args, table: dict) -> dict:
    return {key: getattr(args, name) for name, (_, key, _, _) in table.items() if getattr(args, name, None) is not None}


def _run(args) -> int:
    from chainrule import recipes

    if args.command == "train":
        out = args.out or f"runs/{args.model}"
        train_options = _overrides(args, _TRAIN_OPTIONS)
        if args.compile:
            train_options["compile"] = True
        summary = recipes.train_run(args.model, out, _overrides(args, _MODEL_OPTIONS), train_options,
                                    overwrite=args.overwrite, resume=args.resume, verbose=0 if args.quiet else 1)
        if recipes.is_rank0():  # one summary, from rank 0 under mpiexec
            print(json.dumps(summary, indent=2))
            print(f"run folder: {out}")
    elif args.command == "evaluate":
        print(json.dumps(recipes.evaluate_run(args.run), indent=2))
    elif args.command == "sample":
        print(recipes.sample_run(args.run, args.prompt, args.tokens, args.temperature, args.top_k, args.seed))
    elif args.command == "demo":
        summary = recipes.train_run("gpt", args.out, train_overrides={"steps": args.steps, "eval_interval": 100},
                                    overwrite=True)
        print(f"validation loss {summary['val_loss']:.3f} nats/char after {args.steps} steps; a sample:\n")
        print(recipes.sample_run(args.out, "ROMEO:", 300))
    elif args.command == "diagnose":
        _diagnose(args)
    elif args.command == "graph":
        from chainrule.viz import render_run_graph

        print(f"graph written to {render_run_graph(args.run, args.out, depth=args.depth)}")
    elif args.command in ("import-hf", "export"):
        _transfer(args)
    return 0


def _transfer(args) -> None:
    from chainrule import transfer

    if args.command == "import-hf":
        config = transfer.import_hf_run(args.folder, args.out, overwrite=args.overwrite)
        print(json.dumps({"run": args.out, "model": config["model"]}, indent=2))
    else:
        print(json.dumps(transfer.export_run(args.run, args.fmt, args.out, args.opset, args.checkpoint, args.verify),
                         indent=2))


def _diagnose(args) -> None:
    from chainrule.diagnostics.experiment import run_vanishing_gradient_experiment
    from chainrule.recipes import RunError

    if args.rnn:
        from chainrule.diagnostics.rnn_experiment import run_rnn_gradient_experiment

        if args.steps < 1 or args.seq_len < 4:
            raise RunError(f"diagnose --rnn needs --steps >= 1 and --seq-len >= 4 (got {args.steps}, {args.seq_len})")
        out = args.out or "runs/diagnose-rnn"
        run_rnn_gradient_experiment(out, steps=args.steps, seq_len=args.seq_len, seed=args.seed)
        print(f"results in {out}/ (summary.md, grad_through_time.png, learning_curves.png)")
        return
    args.out = args.out or "runs/diagnose"
    if args.steps < 2 or args.depth < 1 or args.width < 1:
        got = f"{args.steps}, {args.depth}, {args.width}"
        raise RunError(f"diagnose needs --steps >= 2, --depth >= 1 and --width >= 1 (got {got})")
    run_vanishing_gradient_experiment(args.out, steps=args.steps, depth=args.depth, width=args.width, seed=args.seed)
    print(f"results in {args.out}/ (summary.md, grad_norms_at_init.png, learning_curves.png, grad_norm_evolution.png)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from chainrule.backend import get_default_device, set_default_device
    from chainrule.backend.allocator import keep_freed_memory
    from chainrule.io import CheckpointError
    from chainrule.recipes import RunError

    keep_freed_memory()
    previous_device = get_default_device()
    try:
        _join_processes(args)
        _use_device(getattr(args, "device", None))
        return _run(args)
    except (RunError, CheckpointError, FileNotFoundError, PermissionError) as err:
        return _failed(f"chainrule: error: {err}", 2)
    except KeyboardInterrupt:
        return _failed("chainrule: interrupted", 130)
    finally:
        set_default_device(previous_device)


def _use_device(name: str | None) -> None:
    """``--device``: the default device while the command runs (models, data and steps are made there)."""
    from chainrule.backend import set_default_device
    from chainrule.recipes import RunError

    if name is None:
        return
    try:
        set_default_device(name)
    except RuntimeError as err:
        raise RunError(f"--device {name}: {err}") from None


def _join_processes(args) -> None:
    """Under an MPI launcher (mpiexec, srun), join the other processes; only ``train`` runs that way."""
    from chainrule import distributed as dist
    from chainrule.recipes import RunError

    if not dist.wants_distributed():
        return
    if args.command != "train":
        raise RunError(f"`chainrule {args.command}` runs in one process; of the commands only `train` runs under "
                       "mpiexec")
    try:
        dist.init_process_group("mpi")
    except ImportError as err:
        raise RunError(str(err)) from None


def _failed(message: str, status: int) -> int:
    """Print the one-line error; under a process group, end every process of the job with ``status``."""
    from chainrule import distributed as dist

    if not dist.is_initialized() or dist.get_world_size() == 1:
        print(message, file=sys.stderr)
        return status
    from chainrule.distributed._group import _State
    from chainrule.distributed._watchdog import abort

    abort(_State.world_comm, dist.get_rank(), message, status)
    return status  # not reached


if __name__ == "__main__":
    sys.exit(main())
