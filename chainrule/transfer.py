"""Moving models in and out of run folders: ``chainrule import-hf`` and ``chainrule export``.

``import_hf_run`` turns a transformers GPT-2 folder into a chainrule run folder (``config.json``, ``best`` and
``last`` checkpoints at step 0, and the GPT-2 tokenizer files), which ``sample``, ``evaluate`` and
``train gpt --resume`` (fine-tuning) accept. ``export_run`` writes a run's model as a transformers folder
(``--format hf``) or an ONNX file (``--format onnx``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import chainrule as cr
from chainrule import io
from chainrule.data.bpe import TOKENIZER_FILES
from chainrule.recipes import RECIPES, RunError, load_run

__all__ = ["import_hf_run", "export_run", "FINE_TUNE_OPTIONS"]

# what `train gpt --resume` uses on an imported model unless told otherwise: a short, gentle fine-tuning
FINE_TUNE_OPTIONS = {"steps": 200, "batch_size": 8, "seq_len": 128, "lr": 1e-4, "min_lr": 1e-5, "warmup_steps": 20,
                     "eval_interval": 50, "eval_batches": 10, "sample_tokens": 100, "sample_prompt": "ROMEO:"}


def import_hf_run(folder, out, overwrite: bool = False) -> dict:
    """Make the run folder ``out`` from the transformers GPT-2 folder ``folder``; returns its config."""
    from chainrule.models import GPT
    from chainrule.models.hf_gpt2 import CONFIG_NAME, gpt_config_from_hf

    source, out = Path(folder), Path(out)
    model = GPT.from_pretrained(source)
    model_config = gpt_config_from_hf(json.loads((source / CONFIG_NAME).read_text()))
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise RunError(f"output folder {out} exists and is not empty; pass --overwrite to replace it")
        if not (out / "config.json").exists():
            raise RunError(f"refusing to overwrite {out}: it does not look like a chainrule run folder "
                           "(no config.json)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    config = {"kind": "gpt", "model": model_config, "train": {**RECIPES["gpt"].train, **FINE_TUNE_OPTIONS},
              "imported_from": str(source.resolve()), "chainrule_version": cr.__version__}
    checkpoint_config = {"kind": "gpt", "model": model_config}
    for name in ("best.safetensors", "last.safetensors"):
        io.save(model, out / name, config=checkpoint_config, step=0, epoch=0)
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copyfile(source / name, out / name)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return config


def export_run(run, fmt: str, out=None, opset: int = 18, checkpoint: str | None = None, verify: bool = True) -> dict:
    """Write the model of run folder ``run`` as a transformers folder (``fmt='hf'``) or ONNX file (``'onnx'``)."""
    run = Path(run)
    config, model, path = load_run(run, checkpoint)
    model.eval()
    if fmt == "hf":
        if config["kind"] != "gpt":
            raise RunError(f"export --format hf needs a gpt run; {run} is a {config['kind']} run")
        target = Path(out or run / "hf")
        model.save_pretrained(target)
        for name in TOKENIZER_FILES:
            if (run / name).exists():
                shutil.copyfile(run / name, target / name)
        return {"format": "hf", "out": str(target), "checkpoint": str(path)}
    if fmt == "onnx":
        return _export_onnx(config, model, Path(out or run / "model.onnx"), opset, verify) | {"checkpoint": str(path)}
    raise RunError(f"export: unknown format {fmt!r}; choose hf or onnx")


def _export_onnx(config: dict, model, target: Path, opset: int, verify: bool) -> dict:
    from chainrule import onnx as cr_onnx

    name = {"gpt": "idx", "cnn": "images"}.get(config["kind"], "features")
    axes = {name: {0: "batch", 1: "seq"} if config["kind"] == "gpt" else {0: "batch"}}
    axes["logits"] = dict(axes[name])
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        cr_onnx.export(model, (_example_input(config, 1, 8),), target, input_names=[name], output_names=["logits"],
                       dynamic_axes=axes, opset_version=opset)
        result = {"format": "onnx", "out": str(target), "opset": opset}
        if verify:
            # at another batch size and sequence length than the export's example, kept short (a forward over
            # GPT-2's whole 1024-token context would take minutes on a CPU)
            other = _example_input(config, 3, 32)
            result["max_abs_diff"] = cr_onnx.verify(target, model, (other,))
    except ImportError as err:
        raise RunError(str(err)) from None
    except cr_onnx.ExportError as err:
        raise RunError(str(err)) from None
    return result


def _example_input(config: dict, batch: int, length: int):
    kind, model_config = config["kind"], config["model"]
    if kind == "gpt":
        return cr.randint(0, model_config["vocab_size"], (batch, min(length, model_config["block_size"])))
    if kind == "cnn":
        size = model_config.get("image_size", 28)
        return cr.randn(batch, model_config.get("in_channels", 1), size, size)
    return cr.randn(batch, model_config["in_features"])
