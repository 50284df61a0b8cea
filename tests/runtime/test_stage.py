"""A stage's main(): results to the DVC metrics file, timings apart, user errors as one line."""
import json

import yaml

from pipeline.runtime.errors import UserInputError
from pipeline.runtime.stage import stage_main


def test_timings_go_apart_from_the_results(params_dict, tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params_dict))
    code = stage_main("demo", lambda params: {"test/hr_10": 0.5, "timing/seconds": 1.25,
                                              "timing/epoch_minutes": [0.1, 0.2]},
                      str(tmp_path / "params.yaml"))
    assert code == 0
    metrics = json.loads((tmp_path / params_dict["paths"]["metrics"] / "demo.json").read_text())
    costs = json.loads((tmp_path / params_dict["paths"]["costs"] / "demo.json").read_text())
    assert metrics == {"test/hr_10": 0.5}
    assert costs == {"timing/seconds": 1.25, "timing/epoch_minutes": [0.1, 0.2]}


def test_a_user_error_is_one_line_and_exit_status_2(params_dict, tmp_path, capsys):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params_dict))

    def fails(params):
        raise UserInputError("dataset.path /nope is not a folder")

    assert stage_main("demo", fails, str(tmp_path / "params.yaml")) == 2
    assert capsys.readouterr().err == "demo: error: dataset.path /nope is not a folder\n"
    assert not (tmp_path / params_dict["paths"]["metrics"] / "demo.json").exists()
