"""`python -m vllm_surgeon` is the `vllm-surgeon` command."""

import sys

from ._cli import main

sys.exit(main())
