"""``torch.backends.cudnn``: settable flags (no cuDNN behind them on the CPU backend)."""

enabled = True
benchmark = False
deterministic = False
allow_tf32 = True


def is_available() -> bool:
    return False


def version():
    return None
