"""The published parameter uncertainty of a law preset, as a distribution."""

from __future__ import annotations

from jax.typing import ArrayLike

from .. import laws
from ..laws import chinchilla
from .distributions import MultivariateNormal


def law_uncertainty(law: str | laws.Preset, *, log_sd: ArrayLike | None = None):
    """The parameter distribution of a law preset, a :class:`MultivariateNormal`
    centred on the preset's constants.

    ``chinchilla-besiroglu2024``: Besiroglu et al. 2024's bootstrap uncertainty,
    a multivariate normal in Hoffmann's coordinates ``(log E, log A, log B,
    alpha, beta)`` with :data:`jscale.laws.chinchilla.BESIROGLU2024_COVARIANCE`
    (their 4000 bootstrap resamples refitted; it reproduces their standard
    errors, arXiv:2404.10102 Table 1). The correlations matter (log A with alpha
    at 0.999): draw jointly. The normal in log B is lighter-tailed than the
    bootstrap: its standard deviation of B is about 1000, the bootstrap's 1293.

    Other presets publish no joint uncertainty: give ``log_sd``, the standard
    deviation of the log of every parameter (a scalar, or a pytree like the
    preset's parameters), for independent log-normals (it also overrides the
    Besiroglu covariance).

    Args:
      law: a preset name or :class:`jscale.laws.Preset`.
      log_sd: standard deviations of the log-parameters (independent), or None.

    Returns:
      A :class:`MultivariateNormal` over the preset's ``*Params``.

    Examples:
      >>> d = law_uncertainty("chinchilla-besiroglu2024")
      >>> d.names, d.log_flags()
      (['E', 'A', 'B', 'alpha', 'beta'], [True, True, True, False, False])
      >>> law_uncertainty("kaplan2020", log_sd=0.05).independent
      True
    """
    preset = laws.get(law) if isinstance(law, str) else law
    if log_sd is not None:
        return MultivariateNormal.from_sd(preset.params, log_sd, log=True)
    if preset.name != chinchilla.BESIROGLU2024.name:
        raise ValueError(
            f"no published parameter uncertainty for law {preset.name!r}; presets "
            f"with one: {chinchilla.BESIROGLU2024.name}. Give log_sd (--log-sd), "
            "the standard deviation of each log-parameter, for independent "
            "log-normals"
        )
    cov = chinchilla.besiroglu2024_covariance()  # in ChinchillaParams' order
    log = chinchilla.ChinchillaParams(True, True, True, False, False)
    return MultivariateNormal.from_covariance(preset.params, cov, log=log)
