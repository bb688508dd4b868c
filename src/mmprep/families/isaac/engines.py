"""Where engines disagree on Isaac (docs/engines.md).

Read: the seed S0 (vLLM ``isaac.py``); vLLM main ``model_executor/models/isaac.py`` @4cb6572b
(``get_mrope_input_positions``: the same positions as the seed); the released model's rule
(Perceptron / transformers) is ``IsaacSpec.mrope_rule="perceptron"`` (``positions.py``); this
table only selects it.
"""

from __future__ import annotations

from ...engines import EngineRule

RULES = (
    EngineRule(
        "mrope_after_image",
        "Isaac MRoPE: where text positions continue after an image",
        {"vllm-seed": {"mrope_rule": "vllm"}, "vllm": {"mrope_rule": "vllm"},
         "transformers": {"mrope_rule": "perceptron"}},
        {"vllm-seed": "text between images starts at max(t, h - 1, w - 1) + 1 of the image block "
                      "(text after the last image at t + 1)",
         "vllm": "the same",
         "transformers": "the released model: the running position advances by 1 per image"},
        counts=False,
    ),
)
