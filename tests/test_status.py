"""The one status table, and its short names in every JSON output."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from jscale import _status, allocation, cli, fitting


def test_table_codes_are_unique_and_dense():
    codes = [s.code for s in _status.TABLE]
    names = [s.name for s in _status.TABLE]
    assert codes == list(range(len(codes)))
    assert len(set(names)) == len(names)
    for s in _status.TABLE:
        # A short, stable identifier: no spaces, no colons, lower case.
        assert s.name.isidentifier() and s.name == s.name.lower()
        assert _status.code(s.name) == s.code and _status.name(s.code) == s.name


def test_allocation_and_fitting_share_the_table():
    assert allocation.NONFINITE == fitting.NONFINITE == _status.NONFINITE
    assert allocation.MAX_STEPS == fitting.MAX_STEPS == _status.MAX_STEPS
    assert allocation.CONVERGED == fitting.CONVERGED == _status.CONVERGED
    assert allocation.STATUS_MESSAGES is fitting.STATUS_MESSAGES


def test_unknown_names_and_codes_are_refused():
    with pytest.raises(ValueError, match="unknown status name 'nope'"):
        _status.code("nope")
    with pytest.raises(ValueError, match="unknown status code 99"):
        _status.name(99)


def test_counts_by_name():
    status = np.array([0, 0, 5, 3, 0, 6])
    assert _status.counts(status) == {
        "converged": 3,
        "nonfinite": 1,
        "pruned": 1,
        "stalled": 1,
    }


@pytest.mark.parametrize("entry", _status.TABLE, ids=lambda s: s.name)
def test_optimal_json_reports_name_and_code(entry, monkeypatch, capsys):
    # Whatever status an allocation comes back with, `jscale optimal --json`
    # reports the short name and the number (not the message).
    real = allocation.optimal

    def with_status(*args, **kwargs):
        r = real(*args, **kwargs)
        return r._replace(status=jnp.asarray(entry.code, jnp.int32))

    monkeypatch.setattr(allocation, "optimal", with_status)
    assert cli.main(["optimal", "--compute", "1e24", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == entry.name
    assert out["status_code"] == entry.code


def test_optimal_json_status_of_a_real_allocation(capsys):
    assert cli.main(["optimal", "--compute", "1e24", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["status"], out["status_code"]) == ("converged", 0)


def test_to_row_core_keys_and_moe_fields():
    from jscale import laws

    r = allocation.optimal(laws.get("chinchilla-hoffmann2022"), 1e24)
    row = allocation.to_row(r)
    assert list(row) == [
        "n_params",
        "n_tokens",
        "tokens_per_param",
        "loss",
        "compute_flops",
        "status",
        "status_code",
    ]
    assert row["n_params"] == float(r.n_params)
    assert row["tokens_per_param"] == float(r.n_tokens / r.n_params)
    moe = allocation.optimal(laws.get("moe-ludziejewski2025"), 1e22)
    row = allocation.to_row(moe)
    assert row["n_active_params"] == row["n_params"] == float(moe.n_params)
    assert row["n_total_params"] == float(moe.n_total_params)
    batch = allocation.optimal(
        laws.get("chinchilla-hoffmann2022"), jnp.array([1e22, 1e24])
    )
    assert allocation.to_row(batch, (1,))["n_params"] == float(batch.n_params[1])
