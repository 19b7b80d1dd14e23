"""Checkpoints and tensor files: safetensors for arrays, JSON for everything else, never pickle.

A checkpoint is ONE ``.safetensors`` file: the model's tensors under their own names (readable by any
safetensors tool, e.g. ``safetensors.torch.load_file``), optimizer state tensors under reserved prefixes
(``__optim__.state.3.exp_avg``), and a JSON document in the file's ``__metadata__`` (key ``"chainrule"``)
holding the config, step, epoch, optimizer param_groups and scalar state, scheduler state, RNG state, the
chainrule version and the checkpoint format version. Files are written atomically (temporary file in the
same folder, fsync, ``os.replace``, fsync of the folder) and validated completely when read.

    import chainrule as cr
    cr.io.save(model, "run/ckpt.safetensors", optimizer=opt, scheduler=sched, config=cfg, step=step, epoch=epoch)
    ckpt = cr.io.load("run/ckpt.safetensors")     # Checkpoint: .state_dict, .metadata, .config, .step, .epoch
    ckpt.restore(model, optimizer=opt, scheduler=sched)   # validates everything, then applies
    weights = cr.io.load_state_dict("model.safetensors")  # any safetensors file -> dict of tensors

The format layer works on numpy arrays: :func:`read_safetensors`, :func:`write_safetensors`,
:func:`read_header`. Every problem with a file raises :class:`CheckpointError` naming the file.
"""

from chainrule.io.checkpoint import FORMAT_VERSION, RESERVED_PREFIXES, Checkpoint, load, load_state_dict, save
from chainrule.io.errors import CheckpointError
from chainrule.io.safetensors import TensorInfo, read_header, read_safetensors, write_safetensors

__all__ = ["save", "load", "load_state_dict", "Checkpoint", "CheckpointError", "read_safetensors",
           "write_safetensors", "read_header", "TensorInfo", "FORMAT_VERSION", "RESERVED_PREFIXES"]
