"""``kl_divergence(p, q)``: dispatched on the pair of types through ``register_kl``'s registry, the most
specific registered pair (by method resolution order) winning, as PyTorch."""

from __future__ import annotations

from chainrule import linalg
from chainrule import ops as _ops
from chainrule.distributions.continuous import Cauchy, Laplace, LogNormal
from chainrule.distributions.continuous_bernoulli import ContinuousBernoulli
from chainrule.distributions.derived import EULER_GAMMA, Gumbel, HalfNormal, Pareto
from chainrule.distributions.discrete import Binomial, Geometric, Poisson
from chainrule.distributions.exp_family import ExponentialFamily
from chainrule.distributions.families import Bernoulli, Categorical, Exponential, Normal, OneHotCategorical, Uniform
from chainrule.distributions.gamma import Beta, Dirichlet, Gamma
from chainrule.distributions.independent import Independent, _sum_rightmost
from chainrule.distributions.lowrank_multivariate_normal import LowRankMultivariateNormal
from chainrule.distributions.multivariate_normal import MultivariateNormal, _batch_mahalanobis
from chainrule.distributions.transformed import TransformedDistribution

__all__ = ["kl_divergence", "register_kl"]

_KL_REGISTRY: dict = {}


def register_kl(type_p, type_q):
    """Decorator: ``@register_kl(Normal, Normal) def kl(p, q): ...``."""
    def decorator(fn):
        _KL_REGISTRY[type_p, type_q] = fn
        return fn

    return decorator


def _dispatch(type_p, type_q):
    matches = [(tp, tq) for tp, tq in _KL_REGISTRY if issubclass(type_p, tp) and issubclass(type_q, tq)]
    if not matches:
        return None
    return _KL_REGISTRY[min(matches, key=lambda m: (type_p.__mro__.index(m[0]), type_q.__mro__.index(m[1])))]


def kl_divergence(p, q):
    """KL(p || q), batched over the distributions' batch shape."""
    fn = _dispatch(type(p), type(q))
    if fn is None:
        raise NotImplementedError(f"No KL(p || q) is implemented for p type {type(p).__name__} and q type "
                                  f"{type(q).__name__}")
    return fn(p, q)


_INF = float("inf")


@register_kl(Normal, Normal)
def _kl_normal_normal(p, q):
    var_ratio = (p.scale / q.scale) ** 2
    t1 = ((p.loc - q.loc) / q.scale) ** 2
    return 0.5 * (var_ratio + t1 - 1 - var_ratio.log())


@register_kl(Bernoulli, Bernoulli)
def _kl_bernoulli_bernoulli(p, q):
    from chainrule.nn.functional import softplus

    t1 = p.probs * (softplus(-q.logits) - softplus(-p.logits))
    t1 = _ops.where(q.probs.detach() == 0, _INF, t1)
    t1 = _ops.where(p.probs.detach() == 0, 0.0, t1)
    t2 = (1 - p.probs) * (softplus(q.logits) - softplus(p.logits))
    t2 = _ops.where(q.probs.detach() == 1, _INF, t2)
    t2 = _ops.where(p.probs.detach() == 1, 0.0, t2)
    return t1 + t2


@register_kl(Categorical, Categorical)
def _kl_categorical_categorical(p, q):
    t = p.probs * (p.logits - q.logits)
    shape = t.shape
    t = _ops.where((q.probs.detach() == 0).expand(*shape), _INF, t)
    t = _ops.where((p.probs.detach() == 0).expand(*shape), 0.0, t)
    return t.sum(-1)


@register_kl(OneHotCategorical, OneHotCategorical)
def _kl_onehot_onehot(p, q):
    return _kl_categorical_categorical(p._categorical, q._categorical)


@register_kl(Uniform, Uniform)
def _kl_uniform_uniform(p, q):
    result = ((q.high - q.low) / (p.high - p.low)).log()
    outside = (q.low.detach() > p.low.detach()) | (q.high.detach() < p.high.detach())
    return _ops.where(outside, _INF, result)


@register_kl(Exponential, Exponential)
def _kl_exponential_exponential(p, q):
    rate_ratio = q.rate / p.rate
    return -rate_ratio.log() + rate_ratio - 1


@register_kl(Gamma, Gamma)
def _kl_gamma_gamma(p, q):
    log_rate_ratio = (p.rate / q.rate).log()
    lgamma_diff = q.concentration.lgamma() - p.concentration.lgamma()
    digamma_term = (p.concentration - q.concentration) * p.concentration.digamma()
    rate_term = (q.rate - p.rate) * (p.concentration / p.rate)
    return q.concentration * log_rate_ratio + lgamma_diff + digamma_term + rate_term


@register_kl(Dirichlet, Dirichlet)
def _kl_dirichlet_dirichlet(p, q):
    a, b = p.concentration, q.concentration
    a0, b0 = a.sum(-1), b.sum(-1)
    log_norm = a0.lgamma() - b0.lgamma() - (a.lgamma() - b.lgamma()).sum(-1)
    return log_norm + ((a - b) * (a.digamma() - a0.digamma().unsqueeze(-1))).sum(-1)


@register_kl(Beta, Beta)
def _kl_beta_beta(p, q):
    return _kl_dirichlet_dirichlet(p._dirichlet, q._dirichlet)


@register_kl(MultivariateNormal, MultivariateNormal)
@register_kl(LowRankMultivariateNormal, LowRankMultivariateNormal)
@register_kl(LowRankMultivariateNormal, MultivariateNormal)
@register_kl(MultivariateNormal, LowRankMultivariateNormal)
def _kl_mvn_mvn(p, q):
    """0.5 (tr(Sq^-1 Sp) + (mq - mp)^T Sq^-1 (mq - mp) - k + log det Sq - log det Sp), through the factors:
    tr(Sq^-1 Sp) = ||Lq^-1 Lp||_F^2."""
    if tuple(p.event_shape) != tuple(q.event_shape):
        raise ValueError("KL-divergence between two Multivariate Normals with different event shapes cannot "
                         "be computed")
    Lp, Lq = p._unbroadcasted_scale_tril, q._unbroadcasted_scale_tril
    batch = tuple(_np_broadcast(Lp.shape[:-2], Lq.shape[:-2]))
    k = p.event_shape[0]
    trace = (linalg.solve_triangular(Lq, Lp, upper=False) ** 2).sum((-2, -1))
    mahalanobis = _batch_mahalanobis(Lq, q.loc - p.loc)
    half_log_det_ratio = q._half_log_det() - p._half_log_det()
    out = half_log_det_ratio + 0.5 * (trace + mahalanobis - k)
    shape = tuple(_np_broadcast(batch, tuple(out.shape)))
    return out.expand(*shape) if tuple(out.shape) != shape else out


def _np_broadcast(*shapes):
    from chainrule.backend import np

    return np.broadcast_shapes(*(tuple(s) for s in shapes))


@register_kl(Laplace, Laplace)
def _kl_laplace_laplace(p, q):
    """log(bq / bp) + |mp - mq| / bq + bp / bq exp(-|mp - mq| / bp) - 1."""
    scale_ratio = p.scale / q.scale
    gap = (p.loc - q.loc).abs()
    return -scale_ratio.log() + gap / q.scale + scale_ratio * (-gap / p.scale).exp() - 1


@register_kl(LogNormal, LogNormal)
def _kl_lognormal_lognormal(p, q):
    return _kl_normal_normal(p.base_dist, q.base_dist)  # KL is invariant under the same bijection (exp)


@register_kl(Poisson, Poisson)
def _kl_poisson_poisson(p, q):
    return p.rate * (p.rate.log() - q.rate.log()) - (p.rate - q.rate)


@register_kl(Independent, Independent)
def _kl_independent_independent(p, q):
    if p.reinterpreted_batch_ndims != q.reinterpreted_batch_ndims:
        raise NotImplementedError("KL between Independent distributions with different reinterpreted_batch_ndims")
    return _sum_rightmost(kl_divergence(p.base_dist, q.base_dist), p.reinterpreted_batch_ndims)


@register_kl(Gumbel, Gumbel)
def _kl_gumbel_gumbel(p, q):
    """With r = bp / bq and d = (mp - mq) / bq: -log r + d + r gamma + exp(lgamma(1 + r) - d) - (1 + gamma)."""
    ratio = p.scale / q.scale
    shift = (p.loc - q.loc) / q.scale
    return -ratio.log() + shift + ratio * EULER_GAMMA + ((1 + ratio).lgamma() - shift).exp() - (1 + EULER_GAMMA)


@register_kl(HalfNormal, HalfNormal)
def _kl_halfnormal_halfnormal(p, q):
    var_ratio = (p.scale / q.scale) ** 2
    return 0.5 * (var_ratio - 1 - var_ratio.log())


@register_kl(Pareto, Pareto)
def _kl_pareto_pareto(p, q):
    """alpha_q log(s_p / s_q) - log(alpha_q / alpha_p) + alpha_q / alpha_p - 1; infinite where q's support starts
    above p's."""
    alpha_ratio = q.alpha / p.alpha
    result = q.alpha * (p.scale / q.scale).log() - alpha_ratio.log() + alpha_ratio - 1
    return _ops.where(p.scale.detach() < q.scale.detach(), _INF, result)


@register_kl(Binomial, Binomial)
def _kl_binomial_binomial(p, q):
    """total_count times the Bernoulli KL, for equal counts (infinite where q has fewer trials)."""
    if bool((p.total_count.detach() < q.total_count.detach()).any()):
        raise NotImplementedError("KL between Binomials where q.total_count > p.total_count is not implemented")
    per_trial = _kl_bernoulli_bernoulli(Bernoulli(probs=p.probs, validate_args=False),
                                        Bernoulli(probs=q.probs, validate_args=False))
    return _ops.where(p.total_count.detach() > q.total_count.detach(), _INF, p.total_count * per_trial)


@register_kl(Geometric, Geometric)
def _kl_geometric_geometric(p, q):
    """-H(p) - E_p[k] log(1 - q) - log q, with E_p[k] = 1/p - 1."""
    return -p.entropy() - (-q.probs).log1p() / p.probs - q.logits


@register_kl(TransformedDistribution, TransformedDistribution)
def _kl_transformed_transformed(p, q):
    """The same transforms on both sides leave KL unchanged: the KL of the bases, summed over the event
    dimensions the transforms add."""
    if p.transforms != q.transforms:
        raise NotImplementedError("KL between TransformedDistributions with different transforms is not implemented")
    if tuple(p.event_shape) != tuple(q.event_shape):
        raise NotImplementedError("KL between TransformedDistributions with different event shapes is not "
                                  "implemented")
    extra = len(p.event_shape) - len(p.base_dist.event_shape)
    return _sum_rightmost(kl_divergence(p.base_dist, q.base_dist), extra)


@register_kl(ExponentialFamily, ExponentialFamily)
def _kl_expfamily_expfamily(p, q):
    """Two members of one exponential family: the Bregman divergence of the log normaliser,
    A(eta_q) - A(eta_p) - <eta_q - eta_p, grad A(eta_p)>."""
    if type(p) is not type(q):
        raise NotImplementedError("The cross KL-divergence between different exponential families cannot be "
                                  "computed using Bregman divergences")
    p_params, p_normalizer, gradients, tracked = p._log_normalizer_and_gradients()
    q_params = q._natural_params
    result = q._log_normalizer(*q_params) - p_normalizer
    for eta_p, eta_q, g in zip(p_params, q_params, gradients):
        result = result - _sum_rightmost((eta_q - eta_p) * g, len(q.event_shape))
    return result if tracked or any(eta.requires_grad for eta in q_params) else result.detach()


@register_kl(ContinuousBernoulli, ContinuousBernoulli)
def _kl_continuous_bernoulli(p, q):
    """E_p[x] (logit p - logit q) + log C(p) + log(1 - p) - log C(q) - log(1 - q)."""
    return (p.mean * (p.logits - q.logits) + p._log_norm() + (-p.probs).log1p() - q._log_norm()
            - (-q.probs).log1p())


@register_kl(Cauchy, Cauchy)
def _kl_cauchy_cauchy(p, q):
    """log(((s_p + s_q)^2 + (m_p - m_q)^2) / (4 s_p s_q)) (Chyzak and Nielsen, 2019)."""
    return (((p.scale + q.scale) ** 2 + (p.loc - q.loc) ** 2) / (4 * p.scale * q.scale)).log()
