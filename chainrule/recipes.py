"""End-to-end training recipes behind the ``chainrule`` command: the model, its data set, its
defaults, and the run folder each training run writes.

A run folder ``runs/<name>/`` holds:
- ``config.json``: the model kind, its architecture config and the training options used;
- ``best.safetensors`` / ``last.safetensors``: checkpoints (model, optimizer, scheduler, RNG, step);
- ``metrics.jsonl`` (one line per epoch or evaluation interval) and ``history.json``;
- ``curves.png``: loss and metric curves; ``summary.json``: the final test metrics;
- for the language model, ``samples.txt``: text generated at the end of training.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import chainrule as cr
from chainrule import data, io, optim
from chainrule.data.datasets import TRAIN_FRACTION_TEXT
from chainrule.models import build_model
from chainrule.nn import functional as F
from chainrule.nn.init import skipping_init

__all__ = ["RECIPES", "RunError", "train_run", "evaluate_run", "sample_run", "load_run"]


class RunError(Exception):
    """A problem with a run folder or its options, reported to the user in one line."""


@dataclass
class Recipe:
    kind: str
    description: str
    model: dict
    train: dict


RECIPES = {
    "mlp": Recipe(
        "mlp", "MLP on the 8x8 digits (1,797 images)",
        model={"in_features": 64, "width": 256, "depth": 2, "num_classes": 10, "activation": "relu", "dropout": 0.1},
        train={"epochs": 60, "batch_size": 32, "lr": 1e-3, "weight_decay": 1e-4, "seed": 0},
    ),
    "cnn": Recipe(
        "cnn", "LeNet-style CNN on mnist5k (5,000 MNIST images)",
        model={"in_channels": 1, "num_classes": 10, "channels": [8, 16], "hidden": [120, 84], "image_size": 28,
               "dropout": 0.1},
        train={"epochs": 15, "batch_size": 64, "lr": 2e-3, "weight_decay": 1e-4, "seed": 0},
    ),
    "gpt": Recipe(
        "gpt", "character-level GPT on tiny Shakespeare (1.1 M characters)",
        model={"vocab_size": 65, "block_size": 64, "n_layer": 4, "n_head": 4, "n_embd": 128, "dropout": 0.0,
               "tie_weights": False},
        train={"steps": 1500, "batch_size": 32, "lr": 2e-3, "min_lr": 1e-4, "warmup_steps": 100,
               "weight_decay": 0.1, "grad_clip": 1.0, "eval_interval": 250, "eval_batches": 20, "seed": 0,
               "sample_tokens": 300, "sample_prompt": "ROMEO:"},
    ),
}


# ----- run folders ----------------------------------------------------------------------------------

def _prepare_folder(out: Path, overwrite: bool, resume: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if resume:
            if not (out / "last.safetensors").exists():
                raise RunError(f"cannot resume: {out} has no last.safetensors checkpoint")
            return
        if not overwrite:
            raise RunError(f"output folder {out} exists and is not empty; pass --overwrite to replace it or --resume to continue")
        if not (out / "config.json").exists():
            raise RunError(f"refusing to overwrite {out}: it does not look like a chainrule run folder (no config.json)")
        shutil.rmtree(out)
    elif resume:
        raise RunError(f"cannot resume: {out} does not exist")
    out.mkdir(parents=True, exist_ok=True)


def _resumed_config(out: Path, kind: str, model_overrides: dict, train_overrides: dict) -> tuple[dict, dict]:
    """The saved configuration of the run being resumed; options may not change (the schedule and the
    data order were planned for them)."""
    try:
        saved = json.loads((out / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise RunError(f"cannot resume {out}: unreadable config.json ({err})") from None
    if saved.get("kind") != kind:
        raise RunError(f"cannot resume {out}: it is a {saved.get('kind')} run, not {kind}")
    if _untrained_import(out) and not model_overrides:
        # an imported model not trained yet: the first fine-tuning run chooses its training options
        saved["train"].update(train_overrides)
        _write_json(out / "config.json", saved)
        return saved["model"], saved["train"]
    for section, overrides in (("model", model_overrides), ("train", train_overrides)):
        changed = {k: v for k, v in overrides.items() if saved[section].get(k) != v}
        if changed:
            raise RunError(f"cannot change options when resuming (saved {section} options differ: {changed}); "
                           "start a new run with --out instead")
    return saved["model"], saved["train"]


def _untrained_import(out: Path) -> bool:
    """Whether ``out`` is a run folder made by ``import-hf`` (``chainrule.transfer``) that has not trained yet."""
    try:
        imported = json.loads((out / "config.json").read_text()).get("imported_from")
    except (OSError, json.JSONDecodeError):
        return False
    return bool(imported) and not (out / "metrics.jsonl").exists()


def load_run(run_dir: str | Path, checkpoint: str | None = None):
    """(config, model, checkpoint path) of a finished or interrupted run folder."""
    run = Path(run_dir)
    config_path = run / "config.json"
    if not config_path.exists():
        raise RunError(f"{run} is not a chainrule run folder (no config.json)")
    try:
        config = json.loads(config_path.read_text())
        kind, model_config = config["kind"], config["model"]
    except (json.JSONDecodeError, KeyError) as err:
        raise RunError(f"{config_path} is not a valid run config: {err}") from None
    names = [checkpoint] if checkpoint else ["best.safetensors", "last.safetensors"]
    path = next((run / n for n in names if (run / n).exists()), None)
    if path is None:
        raise RunError(f"{run} has no checkpoint ({' or '.join(names)})")
    with skipping_init():  # the strict restore below overwrites every weight: skip drawing random ones
        model = build_model(kind, model_config)
    try:
        io.load(path).restore(model=model, rng=False)
    except (io.CheckpointError, RuntimeError, ValueError) as err:
        raise RunError(f"can't load {path}: {err}") from None
    return config, model, path


def _write_json(path: Path, payload) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(path)


# ----- training -------------------------------------------------------------------------------------

def train_run(kind: str, out_dir: str | Path, model_overrides: dict | None = None, train_overrides: dict | None = None,
              overwrite: bool = False, resume: bool = False, verbose: int = 1) -> dict:
    """Train the recipe ``kind`` into ``out_dir``; returns the summary (also written to summary.json)."""
    if kind not in RECIPES:
        raise RunError(f"unknown model {kind!r}; choose one of: {', '.join(sorted(RECIPES))}")
    recipe = RECIPES[kind]
    out = Path(out_dir)
    model_config = {**recipe.model, **(model_overrides or {})}
    options = {**recipe.train, **(train_overrides or {})}
    rank, world = _world()
    if resume:  # under mpiexec rank 0 reads the run folder and tells the others
        model_config, options = _from_rank0(lambda: _resumed_config(out, kind, model_overrides or {},
                                                                    train_overrides or {}))
    _check_train_options(kind, options)
    if world > 1 and int(options["batch_size"]) % world:
        raise RunError(f"train {kind}: --batch-size {options['batch_size']} is the global batch, split over the "
                       f"{world} processes, so it must divide by {world}")
    try:
        build_model(kind, model_config)  # refuse impossible sizes before touching the folder
    except (ValueError, TypeError) as err:
        raise RunError(f"impossible model configuration for {kind}: {err}") from None
    if rank == 0:
        _prepare_folder(out, overwrite, resume)
        if not resume:
            _write_json(out / "config.json", {"kind": kind, "model": model_config, "train": options,
                                              "chainrule_version": cr.__version__})
    _barrier()
    cr.manual_seed(int(options["seed"]))
    model = build_model(kind, model_config)  # rebuilt after seeding: initial weights depend only on the seed
    if resume and _untrained_import(out):  # fine-tuning an imported model: its weights, a fresh optimizer
        io.load(out / "last.safetensors").restore(model=model, rng=False)
        resume = False
    started = time.perf_counter()
    trainer = _gpt_training if kind == "gpt" else _classifier_training
    summary = trainer(kind, model, model_config, options, out, resume, verbose)
    summary["train_seconds"] = round(time.perf_counter() - started, 2)
    if world > 1:
        summary["processes"] = world
    if rank == 0:
        _write_json(out / "summary.json", summary)
    _barrier()
    return summary


# ----- several processes (mpiexec -n N chainrule train ...) ---------------------------------------------------

def _world() -> tuple[int, int]:
    """(rank, number of processes) of the process group the command joined, (0, 1) in one process."""
    from chainrule import distributed as dist

    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def is_rank0() -> bool:
    """Whether this process speaks for the run: always, except ranks other than 0 under mpiexec."""
    return _world()[0] == 0


def _barrier() -> None:
    from chainrule import distributed as dist

    if dist.is_initialized():
        dist.barrier()


def _from_rank0(compute):
    """``compute()`` run on rank 0, its result sent to every rank (in one process, just ``compute()``)."""
    from chainrule import distributed as dist

    if not dist.is_initialized():
        return compute()
    box = [compute() if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _parallel(model):
    """The model as fit trains it: wrapped in DistributedDataParallel under a process group."""
    from chainrule import distributed as dist

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return model
    from chainrule.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model)


# training option -> (smallest allowed value, whether the smallest is allowed); only keys a recipe has are checked
_OPTION_RANGES = {
    "epochs": (1, True), "steps": (1, True), "batch_size": (1, True), "eval_interval": (1, True),
    "eval_batches": (1, True), "warmup_steps": (0, True), "sample_tokens": (0, True),
    "lr": (0.0, False), "min_lr": (0.0, True), "weight_decay": (0.0, True), "grad_clip": (0.0, False),
}


def _check_train_options(kind: str, options: dict) -> None:
    """Refuse out-of-range training options (a NaN learning rate, zero epochs...) before anything is written."""
    for key, (lowest, inclusive) in _OPTION_RANGES.items():
        if key not in options:
            continue
        value = options[key]
        ok = isinstance(value, (int, float)) and math.isfinite(value) and (value >= lowest if inclusive else value > lowest)
        if not ok:
            bound = f">= {lowest}" if inclusive else f"> {lowest}"
            raise RunError(f"train {kind}: --{key.replace('_', '-')} must be a finite number {bound}, got {value!r}")


def _plot_curves(history, path: Path) -> None:
    """The learning curves PNG, or one line saying why there is none (matplotlib is in the ``train`` extra)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(f"chainrule: matplotlib is not installed, so no {path.name} "
              "(pip install 'chainrule[train]' for plots and progress bars)", file=sys.stderr)
        return
    from chainrule.train.plots import plot_history

    plot_history(history, path)


def _classifier_data(kind: str, split: str):
    if kind == "mlp":
        return data.load_digits(split, flatten=True)
    return data.load_mnist5k(split)


def _classifier_training(kind, model, model_config, options, out: Path, resume: bool, verbose: int) -> dict:
    from chainrule.train import fit
    from chainrule.train.callbacks import JSONLLogger, ModelCheckpoint

    x_train, y_train = _classifier_data(kind, "train")
    x_test, y_test = _classifier_data(kind, "test")
    epochs = int(options["epochs"])
    rank, world = _world()
    train_data = (x_train, y_train)
    if world > 1:  # each process its share of every epoch, in batches of batch_size / world
        dataset = data.TensorDataset(x_train, y_train)
        sampler = data.DistributedSampler(dataset, seed=int(options["seed"]))
        train_data = data.DataLoader(dataset, batch_size=int(options["batch_size"]) // world, sampler=sampler)
    optimizer = optim.AdamW(model.parameters(), lr=options["lr"], weight_decay=options["weight_decay"])
    steps_per_epoch = math.ceil(len(x_train) / options["batch_size"]) if world == 1 else len(train_data)
    scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=options["lr"], total_steps=epochs * steps_per_epoch)
    history = fit(
        _parallel(model), train_data, loss=F.cross_entropy, optimizer=optimizer, epochs=epochs,
        val_data=(x_test, y_test), metrics=("accuracy",), scheduler=scheduler, scheduler_interval="step",
        batch_size=options["batch_size"], shuffle=True, verbose=verbose, compile=bool(options.get("compile", False)),
        callbacks=[ModelCheckpoint(out, monitor="val_accuracy", config={"kind": kind, "model": model_config}),
                   JSONLLogger(out / "metrics.jsonl")],
        resume_from=out / "last.safetensors" if resume else None,
    )
    if rank != 0:  # rank 0 writes the run's files and evaluates
        return {"kind": kind, "epochs": len(history.epochs)}
    history.to_json(out / "history.json")
    _plot_curves(history, out / "curves.png")
    _, best, _ = load_run(out, "best.safetensors")
    return {"kind": kind, **_evaluate_classifier(kind, best), "epochs": len(history.epochs)}


def _evaluate_classifier(kind: str, model) -> dict:
    x_test, y_test = _classifier_data(kind, "test")
    model.eval()
    with cr.no_grad():
        logits = model(x_test)
        loss = F.cross_entropy(logits, y_test).item()
        accuracy = (logits.argmax(1) == y_test).float().mean().item()
    return {"test_loss": round(loss, 5), "test_accuracy": round(accuracy, 5), "test_samples": len(y_test)}


class _RandomWindows:
    """``length`` random (x, y) windows of the token stream per pass: one "epoch" = one eval interval.

    Under a process group every rank draws the same global batch and keeps its own rows, so N processes
    see together exactly the batches one process would (and their random generators stay equal)."""

    def __init__(self, ids, batch_size: int, block_size: int, length: int):
        self.ids, self.batch_size, self.block_size, self.length = ids, batch_size, block_size, length
        self.rank, self.world = _world()

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        share = self.batch_size // self.world
        rows = slice(self.rank * share, (self.rank + 1) * share)
        for _ in range(self.length):
            x, y = data.sample_batch(self.ids, self.batch_size, self.block_size)
            yield (x, y) if self.world == 1 else (x[rows], y[rows])


def _lm_loss(logits, targets):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def run_vocab(run: Path):
    """The tokenizer of a gpt run: GPT-2's byte-level BPE for an imported GPT-2 (its vocab.json and merges.txt
    are in the run folder), else tiny Shakespeare's characters."""
    from chainrule.data.bpe import GPT2Tokenizer, has_tokenizer

    if has_tokenizer(run):
        return GPT2Tokenizer.from_pretrained(run)
    if (run / "config.json").exists() and json.loads((run / "config.json").read_text()).get("imported_from"):
        raise RunError(f"{run} has no tokenizer (vocab.json and merges.txt, or tokenizer.json); copy the GPT-2 "
                       "folder's files there")
    return data.load_tinyshakespeare("val")[1]


def _token_streams(run: Path, options) -> tuple:
    """(train ids, validation ids, vocab): tiny Shakespeare, or the text file ``options['text_file']``, in the run's
    tokenizer, the first 90% for training."""
    vocab = run_vocab(run)
    if not options.get("text_file") and isinstance(vocab, data.CharVocab):
        return data.load_tinyshakespeare("train")[0], data.load_tinyshakespeare("val")[0], vocab
    path = Path(options.get("text_file") or data.data_path("tinyshakespeare.txt"))
    try:
        ids = vocab.encode(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise RunError(f"cannot read the text file {path}: {err}") from None
    except KeyError as err:
        raise RunError(f"{path} has characters outside the model's vocabulary: {err}") from None
    cut = int(len(ids) * TRAIN_FRACTION_TEXT)
    return cr.tensor(ids[:cut]), cr.tensor(ids[cut:]), vocab


def _fixed_val_batches(options, block_size: int, val_ids):
    gen = cr.Generator(1234)  # the same validation windows in every run
    return [data.sample_batch(val_ids, options["batch_size"], block_size, generator=gen)
            for _ in range(int(options["eval_batches"]))]


def _gpt_training(kind, model, model_config, options, out: Path, resume: bool, verbose: int) -> dict:
    from chainrule.train import fit
    from chainrule.train.callbacks import JSONLLogger, ModelCheckpoint

    train_ids, val_ids, vocab = _token_streams(out, options)
    block_size = min(model.block_size, int(options.get("seq_len") or model.block_size))
    if model_config["vocab_size"] < len(vocab):
        raise RunError(f"gpt: vocab_size must be at least {len(vocab)} for the run's tokenizer, "
                       f"got {model_config['vocab_size']}")
    steps, interval = int(options["steps"]), int(options["eval_interval"])
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "emb" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "emb" not in n)]
    optimizer = optim.AdamW([{"params": decay, "weight_decay": options["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}], lr=options["lr"], betas=(0.9, 0.99))
    warmup = int(options["warmup_steps"])
    scheduler = optim.lr_scheduler.SequentialLR(optimizer, [
        optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0 / max(warmup, 1), total_iters=max(warmup, 1)),
        optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps - warmup, 1), eta_min=options["min_lr"]),
    ], milestones=[max(warmup, 1)])
    train_batches = _RandomWindows(train_ids, int(options["batch_size"]), block_size, interval)
    history = fit(
        _parallel(model), train_batches, loss=_lm_loss, optimizer=optimizer, epochs=math.ceil(steps / interval),
        max_steps=steps, val_data=_fixed_val_batches(options, block_size, val_ids), metrics=(),
        scheduler=scheduler, scheduler_interval="step", grad_clip_norm=options["grad_clip"], verbose=verbose,
        compile=bool(options.get("compile", False)),
        callbacks=[ModelCheckpoint(out, monitor="val_loss", config={"kind": kind, "model": model_config}),
                   JSONLLogger(out / "metrics.jsonl")],
        resume_from=out / "last.safetensors" if resume else None,
    )
    if _world()[0] != 0:  # rank 0 writes the run's files, evaluates and samples
        return {"kind": kind, "steps": steps}
    history.to_json(out / "history.json")
    _plot_curves(history, out / "curves.png")
    _, best, _ = load_run(out, "best.safetensors")
    text = _generate(best, vocab, options["sample_prompt"], int(options["sample_tokens"]), 0.8, None, seed=0)
    (out / "samples.txt").write_text(text + "\n")
    return {"kind": kind, **_evaluate_lm(best, options, val_ids), "steps": steps, "sample": text[:200]}


def _evaluate_lm(model, options, val_ids) -> dict:
    block_size = min(model.block_size, int(options.get("seq_len") or model.block_size))
    model.eval()
    with cr.no_grad():
        losses = [_lm_loss(model(x), y).item() for x, y in _fixed_val_batches(options, block_size, val_ids)]
    val_loss = sum(losses) / len(losses)
    return {"val_loss": round(val_loss, 5), "val_perplexity": round(math.exp(val_loss), 4)}


def _generate(model, vocab, prompt: str, tokens: int, temperature: float, top_k, seed: int) -> str:
    try:
        ids = vocab.encode(prompt or "\n")
    except KeyError as err:
        raise RunError(f"the prompt has characters outside the model's vocabulary: {err}") from None
    out = model.generate(cr.tensor([ids]), tokens, temperature=temperature, top_k=top_k, generator=cr.Generator(seed))
    return vocab.decode(out[0])


# ----- using finished runs --------------------------------------------------------------------------

def evaluate_run(run_dir: str | Path) -> dict:
    """Test metrics of a run's best (else last) checkpoint: accuracy for classifiers, loss for the LM."""
    config, model, path = load_run(run_dir)
    if config["kind"] == "gpt":
        options = {**RECIPES["gpt"].train, **config.get("train", {})}
        val_ids = _token_streams(Path(run_dir), options)[1]
        return {"checkpoint": str(path), **_evaluate_lm(model, options, val_ids)}
    return {"checkpoint": str(path), **_evaluate_classifier(config["kind"], model)}


def sample_run(run_dir: str | Path, prompt: str, tokens: int, temperature: float = 0.8, top_k: int | None = None,
               seed: int = 0) -> str:
    """Text generated by a language-model run from ``prompt``."""
    config, model, _ = load_run(run_dir)
    if config["kind"] != "gpt":
        raise RunError(f"sample needs a gpt run; {run_dir} is a {config['kind']} run")
    if tokens < 0 or temperature <= 0:
        raise RunError(f"sample: --tokens must be >= 0 and --temperature > 0, got {tokens} and {temperature}")
    return _generate(model, run_vocab(Path(run_dir)), prompt, tokens, temperature, top_k, seed)
