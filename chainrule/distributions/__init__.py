"""Probability distributions with PyTorch's ``torch.distributions`` API: parameters are tensors, ``rsample``
is reparameterised (gradients reach the parameters), ``sample`` draws from chainrule's seeded generator,
``kl_divergence`` dispatches through a registry (``register_kl``)."""

from chainrule.distributions import (
                                             constraints,
                                             kl_cross,  # noqa: F401  (registers the cross-family KL pairs)
                                             transforms,
)
from chainrule.distributions.constraint_registry import biject_to, transform_to
from chainrule.distributions.continuous import Cauchy, GeneralizedPareto, Laplace, LogNormal, StudentT, VonMises
from chainrule.distributions.continuous_bernoulli import ContinuousBernoulli
from chainrule.distributions.derived import (
                                             ExpRelaxedCategorical,
                                             Gumbel,
                                             HalfCauchy,
                                             HalfNormal,
                                             InverseGamma,
                                             Kumaraswamy,
                                             LogisticNormal,
                                             LogitRelaxedBernoulli,
                                             Pareto,
                                             RelaxedBernoulli,
                                             RelaxedOneHotCategorical,
                                             Weibull,
)
from chainrule.distributions.discrete import Binomial, Geometric, Multinomial, NegativeBinomial, Poisson
from chainrule.distributions.distribution import Distribution
from chainrule.distributions.exp_family import ExponentialFamily
from chainrule.distributions.families import (
                                             Bernoulli,
                                             Categorical,
                                             Exponential,
                                             Normal,
                                             OneHotCategorical,
                                             OneHotCategoricalStraightThrough,
                                             Uniform,
)
from chainrule.distributions.gamma import Beta, Chi2, Dirichlet, FisherSnedecor, Gamma
from chainrule.distributions.independent import Independent
from chainrule.distributions.kl import kl_divergence, register_kl
from chainrule.distributions.lkj import LKJCholesky
from chainrule.distributions.lowrank_multivariate_normal import LowRankMultivariateNormal
from chainrule.distributions.mixture import MixtureSameFamily
from chainrule.distributions.multivariate_normal import MultivariateNormal
from chainrule.distributions.transformed import TransformedDistribution
from chainrule.distributions.transforms import (
                                             AbsTransform,
                                             AffineTransform,
                                             CatTransform,
                                             ComposeTransform,
                                             CorrCholeskyTransform,
                                             CumulativeDistributionTransform,
                                             ExpTransform,
                                             IndependentTransform,
                                             LowerCholeskyTransform,
                                             PositiveDefiniteTransform,
                                             PowerTransform,
                                             ReshapeTransform,
                                             SigmoidTransform,
                                             SoftmaxTransform,
                                             SoftplusTransform,
                                             StackTransform,
                                             StickBreakingTransform,
                                             TanhTransform,
                                             Transform,
                                             identity_transform,
)
from chainrule.distributions.wishart import Wishart

__all__ = ["Distribution", "Normal", "Uniform", "Bernoulli", "Categorical", "OneHotCategorical", "Exponential",
           "Gamma", "Chi2", "Beta", "Dirichlet", "MultivariateNormal", "Laplace", "LogNormal", "StudentT",
           "Poisson", "Binomial", "Geometric", "Independent", "kl_divergence", "register_kl", "constraints",
           "transforms", "utils", "TransformedDistribution", "biject_to", "transform_to", "Transform", "ComposeTransform",
           "identity_transform", "ExpTransform", "PowerTransform", "SigmoidTransform", "TanhTransform",
           "SoftplusTransform", "AbsTransform", "AffineTransform", "SoftmaxTransform", "StickBreakingTransform",
           "LowerCholeskyTransform", "PositiveDefiniteTransform", "IndependentTransform", "ReshapeTransform",
           "CumulativeDistributionTransform", "CatTransform", "StackTransform", "Cauchy", "HalfNormal", "HalfCauchy",
           "Gumbel", "Pareto", "Weibull", "InverseGamma", "Kumaraswamy", "LogisticNormal", "LogitRelaxedBernoulli",
           "RelaxedBernoulli", "ExpRelaxedCategorical", "RelaxedOneHotCategorical", "OneHotCategoricalStraightThrough",
           "Multinomial", "NegativeBinomial", "FisherSnedecor", "MixtureSameFamily",
           "LowRankMultivariateNormal", "ExponentialFamily", "GeneralizedPareto",
           "ContinuousBernoulli", "VonMises", "CorrCholeskyTransform", "LKJCholesky", "Wishart"]
