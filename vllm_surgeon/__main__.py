"""`python -m vllm_surgeon` is the `vllm-surgeon` command."""

import sys

from vllm_surgeon.commands.cli import main

sys.exit(main())
