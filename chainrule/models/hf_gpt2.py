"""GPT-2 checkpoints in Hugging Face transformers' folder layout, read into chainrule's :class:`GPT` and written back.

A transformers folder holds ``config.json`` and ``model.safetensors`` (or ``model-0000k-of-0000n.safetensors``
shards listed in ``model.safetensors.index.json``). chainrule's GPT is GPT-2's architecture under other names;
what differs is only naming and one layout: GPT-2 keeps its four projections in ``Conv1D`` modules whose
weight is (in, out), the transpose of ``nn.Linear``'s. Files met in practice vary: the keys may carry a
``transformer.`` prefix or not, a tied ``lm_head.weight`` may be present or not (or be the only copy), and
old files carry the causal-mask buffers ``h.N.attn.bias`` / ``h.N.attn.masked_bias``, which are dropped
(while ``h.N.attn.c_attn.bias``, a real parameter, is kept). BF16 and F16 weights are upcast to float32
exactly. Pickle checkpoints are refused: they can run arbitrary code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from chainrule import dtypes as _dt
from chainrule.backend import np
from chainrule.creation import from_numpy
from chainrule.io.errors import CheckpointError
from chainrule.io.safetensors import atomic_write, read_safetensors, write_safetensors
from chainrule.nn.utils import skip_init

__all__ = ["load_gpt2", "save_gpt2", "gpt_config_from_hf", "hf_config_from_gpt", "to_chainrule_state", "CONFIG_NAME",
           "WEIGHTS_NAME", "INDEX_NAME"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
_PICKLE_NAMES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth", "model.ckpt")
_CONVERT_RECIPE = (
    "convert it in a PyTorch environment: import torch, safetensors.torch as st; "
    "st.save_file({k: v.contiguous() for k, v in torch.load(PATH, map_location='cpu', weights_only=True).items()}, "
    "'model.safetensors')")

# (GPT-2 name without the "transformer." prefix, chainrule name, Conv1D weight to transpose); {i} is the block
_NAMES = [
    ("wte.weight", "tok_emb.weight", False),
    ("wpe.weight", "pos_emb.weight", False),
    ("h.{i}.ln_1.weight", "blocks.{i}.ln1.weight", False),
    ("h.{i}.ln_1.bias", "blocks.{i}.ln1.bias", False),
    ("h.{i}.attn.c_attn.weight", "blocks.{i}.attn.qkv.weight", True),
    ("h.{i}.attn.c_attn.bias", "blocks.{i}.attn.qkv.bias", False),
    ("h.{i}.attn.c_proj.weight", "blocks.{i}.attn.proj.weight", True),
    ("h.{i}.attn.c_proj.bias", "blocks.{i}.attn.proj.bias", False),
    ("h.{i}.ln_2.weight", "blocks.{i}.ln2.weight", False),
    ("h.{i}.ln_2.bias", "blocks.{i}.ln2.bias", False),
    ("h.{i}.mlp.c_fc.weight", "blocks.{i}.fc.weight", True),
    ("h.{i}.mlp.c_fc.bias", "blocks.{i}.fc.bias", False),
    ("h.{i}.mlp.c_proj.weight", "blocks.{i}.fc2.weight", True),
    ("h.{i}.mlp.c_proj.bias", "blocks.{i}.fc2.bias", False),
    ("ln_f.weight", "ln_f.weight", False),
    ("ln_f.bias", "ln_f.bias", False),
]
_HEAD = "lm_head.weight"
# the legacy causal-mask buffers; anchored so that c_attn.bias (a parameter) never matches
_MASK_BUFFER = re.compile(r"(^|\.)h\.\d+\.attn\.(masked_)?bias$")
# activation_function -> GPT's activation; every tanh-approximated spelling transformers knows
_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh", "gelu": "gelu"}


# ----- config ----------------------------------------------------------------------------------------------

def gpt_config_from_hf(hf: dict, where: str = CONFIG_NAME) -> dict:
    """The keyword arguments of :class:`GPT` for a transformers GPT-2 ``config.json``; refuses what GPT can't hold."""
    def refuse(what: str) -> CheckpointError:
        return CheckpointError(f"{where}: {what}; chainrule's GPT holds GPT-2 models only")

    if hf.get("model_type") != "gpt2":
        raise refuse(f"model_type is {hf.get('model_type')!r}, not 'gpt2'")
    if hf.get("activation_function", "gelu_new") not in _ACTIVATIONS:
        raise refuse(f"activation_function {hf['activation_function']!r} is not one of {sorted(_ACTIVATIONS)}")
    for flag, wanted in (("add_cross_attention", False), ("scale_attn_by_inverse_layer_idx", False),
                         ("scale_attn_weights", True)):
        if hf.get(flag, wanted) != wanted:
            raise refuse(f"{flag}={hf[flag]} is not supported")
    try:
        return {"vocab_size": int(hf["vocab_size"]), "block_size": int(hf["n_positions"]),
                "n_layer": int(hf["n_layer"]), "n_head": int(hf["n_head"]), "n_embd": int(hf["n_embd"]), "dropout": 0.0,
                "tie_weights": bool(hf.get("tie_word_embeddings", True)),
                "n_inner": None if hf.get("n_inner") is None else int(hf["n_inner"]),
                "layer_norm_eps": float(hf.get("layer_norm_epsilon", 1e-5)),
                "activation": _ACTIVATIONS[hf.get("activation_function", "gelu_new")]}
    except KeyError as err:
        raise CheckpointError(f"{where}: the GPT-2 config has no {err.args[0]!r}") from None


def hf_config_from_gpt(model) -> dict:
    """transformers' ``config.json`` for a chainrule GPT (read from the model itself, so it always fits)."""
    first = model.blocks[0]
    vocab, n_embd = model.tok_emb.weight.shape
    n_inner = first.fc.weight.shape[0]
    eos = vocab - 1  # GPT-2's <|endoftext|> is its last token (50256)
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": vocab,
        "n_positions": model.block_size, "n_embd": n_embd, "n_layer": len(model.blocks),
        "n_head": first.attn.n_head, "n_inner": None if n_inner == 4 * n_embd else n_inner,
        "activation_function": "gelu_new" if first.act.approximate == "tanh" else "gelu",
        "layer_norm_epsilon": first.ln1.eps, "tie_word_embeddings": model.head.weight is model.tok_emb.weight,
        "resid_pdrop": model.drop.p, "embd_pdrop": model.drop.p, "attn_pdrop": first.attn.dropout,
        "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
        "initializer_range": 0.02, "bos_token_id": eos, "eos_token_id": eos, "dtype": "float32",
    }


# ----- reading ---------------------------------------------------------------------------------------------

def load_gpt2(folder, dtype=None):
    """A :class:`GPT` holding the GPT-2 checkpoint in ``folder`` (see the module docstring for what is accepted)."""
    from chainrule.models.gpt import GPT

    folder = Path(folder)
    _check_folder(folder)
    if not (folder / CONFIG_NAME).is_file():
        raise CheckpointError(f"{folder}: no {CONFIG_NAME}; expected a transformers GPT-2 folder "
                              f"({CONFIG_NAME} and {WEIGHTS_NAME})")
    config = gpt_config_from_hf(_read_json(folder / CONFIG_NAME), str(folder / CONFIG_NAME))
    arrays = _read_weights(folder)
    model = skip_init(GPT, **config)  # every weight is overwritten below: drawing random ones would cost seconds
    state = to_chainrule_state(arrays, config["n_layer"], config["tie_weights"], str(folder))
    # copied straight from the (transposed) file arrays into the float32 parameters, upcasting float16 on the way
    model.load_state_dict({k: from_numpy(v) for k, v in state.items()}, strict=True)
    if dtype is not None and _dt.to_dtype(dtype) is not _dt.float32:
        model.to(_dt.to_dtype(dtype))
    return model.eval()


def _check_folder(folder: Path) -> None:
    """Refuse what is not a safetensors GPT-2 folder: a missing path, a file, pickle checkpoints (with a recipe)."""
    if folder.is_file() or not folder.exists():
        if folder.suffix in (".bin", ".pt", ".pth", ".ckpt"):
            raise CheckpointError(f"{folder} is a pickle checkpoint, which chainrule never loads (it can run code); "
                                  + _CONVERT_RECIPE.replace("PATH", repr(str(folder))))
        if not folder.exists():
            raise FileNotFoundError(f"{folder}: no such folder (from_pretrained reads a local folder; fetch one "
                                    f"with huggingface_hub.snapshot_download('{folder}') where the hub is reachable)")
        raise CheckpointError(f"{folder} is a file; from_pretrained takes the folder holding {CONFIG_NAME}")
    has_safetensors = (folder / WEIGHTS_NAME).exists() or (folder / INDEX_NAME).exists()
    pickles = [name for name in _PICKLE_NAMES if (folder / name).exists()]
    if pickles and not has_safetensors:
        raise CheckpointError(f"{folder} holds only {pickles[0]}, a pickle checkpoint, which chainrule never loads "
                              "(it can run code); " + _CONVERT_RECIPE.replace("PATH", repr(str(folder / pickles[0]))))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"cannot read {path}: {err}") from None


def _read_weights(folder: Path) -> dict:
    """Every tensor of the folder's single file or of all the shards its index names, as float arrays."""
    if (folder / WEIGHTS_NAME).exists():
        files = [folder / WEIGHTS_NAME]
    elif (folder / INDEX_NAME).exists():
        weight_map = _read_json(folder / INDEX_NAME).get("weight_map")
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{folder / INDEX_NAME}: no 'weight_map' object")
        files = [folder / name for name in sorted(set(weight_map.values()))]
    else:
        raise CheckpointError(f"{folder}: no {WEIGHTS_NAME} and no {INDEX_NAME}")
    arrays = {}
    for path in files:
        arrays.update(read_safetensors(path, upcast_bfloat16=True)[0])
    return arrays


def to_chainrule_state(arrays: dict, n_layer: int, tied: bool, where: str) -> dict:
    """GPT-2 tensors under chainrule's GPT names, the Conv1D weights transposed; checks that nothing is missing
    or left over."""
    arrays = {_strip_prefix(k): v for k, v in arrays.items() if not _MASK_BUFFER.search(k)}
    if tied and "wte.weight" not in arrays and _HEAD in arrays:  # safetensors.torch.save_model keeps only lm_head
        arrays["wte.weight"] = arrays[_HEAD]
    state = {}
    for hf_name, cr_name, transpose in _expanded_names(n_layer):
        if hf_name not in arrays:
            raise CheckpointError(f"{where}: the checkpoint has no tensor {hf_name!r}")
        value = arrays.pop(hf_name)
        state[cr_name] = value.T if transpose else value
    head = arrays.pop(_HEAD, None)
    if not tied and head is None:
        raise CheckpointError(f"{where}: tie_word_embeddings is false but the checkpoint has no {_HEAD!r}")
    state["head.weight"] = state["tok_emb.weight"] if tied else head
    if arrays:
        raise CheckpointError(f"{where}: tensors a GPT-2 of {n_layer} layers does not have: {sorted(arrays)[:5]}")
    return state


def _strip_prefix(name: str) -> str:
    return name[len("transformer."):] if name.startswith("transformer.") else name


def _expanded_names(n_layer: int) -> list:
    names = []
    for hf_name, cr_name, transpose in _NAMES:
        layers = range(n_layer) if "{i}" in hf_name else [None]
        names += [(hf_name.format(i=i), cr_name.format(i=i), transpose) for i in layers]
    return names


# ----- writing ---------------------------------------------------------------------------------------------

def save_gpt2(model, folder) -> None:
    """``config.json`` and ``model.safetensors`` (with the ``transformer.`` prefix and ``{"format": "pt"}``
    metadata, as transformers writes them) for a chainrule GPT."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = hf_config_from_gpt(model)
    state = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    arrays = {}
    for hf_name, cr_name, transpose in _expanded_names(config["n_layer"]):
        value = state[cr_name]
        arrays["transformer." + hf_name] = np.ascontiguousarray(value.T) if transpose else value
    if not config["tie_word_embeddings"]:  # tied: transformers rebuilds lm_head from wte, as it writes it
        arrays[_HEAD] = state["head.weight"]
    write_safetensors(folder / WEIGHTS_NAME, arrays, metadata={"format": "pt"}, op="save_pretrained")
    text = json.dumps(config, indent=2) + "\n"
    atomic_write(folder / CONFIG_NAME, lambda stream: stream.write(text.encode()), op="save_pretrained")
