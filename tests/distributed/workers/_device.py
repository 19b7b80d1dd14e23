"""Imported first by every worker: the job computes on the suite's device. Under ``CHAINRULE_TEST_DEVICE=cuda``
the default device is ``cuda`` (CuPy on a GPU, else the stand-in that the tests ask for with
``CHAINRULE_STANDIN_CUDA=1``), so the collectives and DistributedDataParallel get device tensors."""

import os

import chainrule as cr

if os.environ.get("CHAINRULE_TEST_DEVICE", "cpu") == "cuda":
    cr.set_default_device("cuda")
