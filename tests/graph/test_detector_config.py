"""Detector parameters from TOML: validated with the file, table and key named; the README's table generated."""

from __future__ import annotations

import pytest

from graph.detector_config import ConfigError, load_config, parameters, parameters_markdown
from graph.detectors import DETECTORS
from tests.helpers import REPO, posguard, server_env


def _write(tmp_path, text):
    path = tmp_path / "detectors.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_file_gives_typed_parameters(tmp_path):
    path = _write(tmp_path, "[skimming]\nexposure_days = 30\nexplain_away = false\n")
    assert load_config(path, DETECTORS) == {"skimming": {"exposure_days": 30.0, "explain_away": False}}
    assert isinstance(load_config(path, DETECTORS)["skimming"]["exposure_days"], float)


@pytest.mark.parametrize("text,named", [
    ("[skimmin]\nexposure_days = 30\n", "unknown detector [skimmin]"),
    ("[skimming]\nexposure_dayz = 30\n", "[skimming] has no parameter 'exposure_dayz'"),
    ("[skimming]\nexposure_days = \"long\"\n", "[skimming] exposure_days: expected float"),
    ("[skimming]\nexplain_away = 1\n", "[skimming] explain_away: expected bool"),
    ("[skimming]\nexposure_days = -3\n", "[skimming] exposure_days: must not be negative"),
    ("[skimming]\nexposure_days = nan\n", "[skimming] exposure_days: must be a finite number"),
    ("skimming = 3\n", "skimming must be a table"),
    ("[skimming\n", "not valid TOML"),
])
def test_a_bad_file_is_refused_naming_what_is_wrong(tmp_path, text, named):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, DETECTORS)
    assert named in str(err.value) and str(path) in str(err.value)


def test_the_command_line_exits_2_naming_the_key_before_doing_anything(tmp_path):
    path = _write(tmp_path, "[cloned]\nno_such_knob = 1\n")
    env = server_env(tmp_path / "home")
    for args in (("score", "--out", str(tmp_path / "out"), "--config", str(path)),
                 ("run", str(tmp_path / "nodrop"), "--out", str(tmp_path / "out"), "--config", str(path))):
        result = posguard(*args, env=env)
        assert result.returncode == 2, result.stderr
        assert "no parameter 'no_such_knob'" in result.stderr and "[cloned]" in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "home").exists()


def test_every_parameter_is_documented_and_the_readme_table_is_current():
    undocumented = [f"{r['detector']}.{r['name']}" for r in parameters(DETECTORS) if not r["description"]]
    assert undocumented == []
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert parameters_markdown(DETECTORS) in readme, "README's parameter table is stale: " \
        "python -c 'from graph.detector_config import parameters_markdown; from graph.detectors import DETECTORS; " \
        "print(parameters_markdown(DETECTORS))'"
