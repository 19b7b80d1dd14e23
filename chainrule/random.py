"""One seeded random generator for everything random in chainrule (init, dropout, shuffling), so a
run started with ``manual_seed(s)`` is reproducible; its state is plain data for checkpoints."""

from __future__ import annotations

from chainrule.backend import np

__all__ = ["Generator", "default_generator", "manual_seed", "seed", "initial_seed", "get_rng_state",
           "set_rng_state"]


class Generator:
    """A PCG64 bit generator with PyTorch's Generator methods."""

    def __init__(self, seed: int | str | None = None):
        if isinstance(seed, str) or hasattr(seed, "xp"):  # Generator("cpu"), as torch.Generator(device)
            seed = None
        self.manual_seed(np.random.SeedSequence().entropy % 2**63 if seed is None else seed)

    def manual_seed(self, seed: int) -> Generator:
        self._seed = int(seed)
        self.numpy = np.random.Generator(np.random.PCG64(self._seed))
        return self

    def seed(self) -> int:
        self.manual_seed(np.random.SeedSequence().entropy % 2**63)
        return self._seed

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> dict:
        """The full state as JSON-serialisable data."""
        state = self.numpy.bit_generator.state
        return {"seed": self._seed, "bit_generator": state["bit_generator"],
                "state": {k: int(v) for k, v in state["state"].items()},
                "has_uint32": int(state["has_uint32"]), "uinteger": int(state["uinteger"])}

    def set_state(self, state: dict) -> None:
        if state.get("bit_generator") != "PCG64":
            raise ValueError(f"set_state: expected a PCG64 generator state, got {state.get('bit_generator')!r}")
        self._seed = int(state["seed"])
        self.numpy = np.random.Generator(np.random.PCG64())
        self.numpy.bit_generator.state = {
            "bit_generator": "PCG64", "state": dict(state["state"]),
            "has_uint32": state["has_uint32"], "uinteger": state["uinteger"],
        }


default_generator = Generator(0)


def manual_seed(seed: int) -> Generator:
    """Seed the default generator: every later random draw in chainrule is reproducible."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    return default_generator.seed()


def initial_seed() -> int:
    return default_generator.initial_seed()


def get_rng_state() -> dict:
    return default_generator.get_state()


def set_rng_state(state: dict) -> None:
    default_generator.set_state(state)
