"""adaptkit: fine-tune the adapters of Speech-LLMs.

Freeze the encoder and the LLM, train the projector and the rows of new control tokens.
Subpackages: `freeze` (the freezing DSL; needs only torch and peft), `models` (load by name or
build a tiny random copy), and the command line in `cli`.
"""

__version__ = "0.1.0"
