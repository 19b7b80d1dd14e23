"""Optimizers and learning-rate schedules, following ``torch.optim``.

    import chainrule as cr
    from chainrule import optim

    opt = optim.AdamW(params, lr=3e-4, weight_decay=0.01)
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=1000)
    for x, y in batches:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        sched.step()

Optimizers: :class:`SGD`, :class:`Adam`, :class:`AdamW`, :class:`NAdam`, :class:`RAdam`, :class:`RMSprop`,
:class:`Adagrad`, :class:`Adafactor`, :class:`LBFGS`, :class:`Adadelta`, :class:`Adamax`, :class:`ASGD`, :class:`Rprop`, all
subclasses of :class:`Optimizer` (param groups, ``zero_grad``, ``step(closure)``, ``state_dict`` /
``load_state_dict`` in PyTorch's format); :class:`SparseAdam` exists only to say why it cannot run (no
sparse gradients here). Schedulers live in :mod:`chainrule.optim.lr_scheduler`,
weight averaging (SWA, EMA) and ``update_bn`` in :mod:`chainrule.optim.swa_utils`;
gradient clipping is in :mod:`chainrule.nn.utils`.
"""

from chainrule.optim import lr_scheduler, swa_utils
from chainrule.optim.adadelta import Adadelta
from chainrule.optim.adafactor import Adafactor
from chainrule.optim.adagrad import Adagrad
from chainrule.optim.adam import Adam, AdamW
from chainrule.optim.adam_variants import NAdam, RAdam
from chainrule.optim.adamax import Adamax
from chainrule.optim.asgd import ASGD
from chainrule.optim.lbfgs import LBFGS
from chainrule.optim.optimizer import Optimizer
from chainrule.optim.rmsprop import RMSprop
from chainrule.optim.rprop import Rprop
from chainrule.optim.sgd import SGD
from chainrule.optim.sparse_adam import SparseAdam

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "NAdam", "RAdam", "RMSprop", "Adagrad", "Adafactor", "LBFGS",
           "Adadelta", "Adamax", "ASGD", "Rprop", "SparseAdam", "lr_scheduler", "swa_utils"]
