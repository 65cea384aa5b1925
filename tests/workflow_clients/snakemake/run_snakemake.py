"""Runs Snakemake with two workarounds for snakemake-executor-plugin-tes 0.1.3 (client side
only; nothing changes in the venv or the server):

- its `common_settings` wait 40 s before the first status check (`init_seconds_before_status_checks`)
  and make every job `pip install` the storage plugins from PyPI first
  (`auto_deploy_default_storage_provider`); here the jobs run the venv's own programs, which
  already hold them, so both are turned off;
- when a task fails it prints `$GITHUB_WORKSPACE/funnel.log` (debug code left in) and raises
  when that file is missing, hiding the real error: an empty one is provided.

Usage: python run_snakemake.py <snakemake arguments>
"""

import dataclasses
import os
import sys
import tempfile

import snakemake_executor_plugin_tes as plugin

plugin.common_settings = dataclasses.replace(
    plugin.common_settings,
    init_seconds_before_status_checks=0,
    auto_deploy_default_storage_provider=False,
)
if not os.path.isfile(os.path.join(os.environ.get("GITHUB_WORKSPACE", "/nonexistent"), "funnel.log")):
    workspace = tempfile.mkdtemp(prefix="snakemake-tes-")
    open(os.path.join(workspace, "funnel.log"), "w").close()
    os.environ["GITHUB_WORKSPACE"] = workspace

from snakemake.cli import main  # noqa: E402

sys.argv[0] = "snakemake"
sys.exit(main())
