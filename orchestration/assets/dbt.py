"""Every dbt model an asset, every dbt test an asset check (dagster-dbt)."""


import json
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)

from orchestration.project import dbt_project
from orchestration.settings import dbt_vars


class CostwatchTranslator(DagsterDbtTranslator):
    """Keys are `<schema>/<name>` and groups the model's folder, read from dbt's metadata."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        meta = dbt_resource_props.get("meta") or {}
        if meta.get("dagster", {}).get("asset_key"):
            return dg.AssetKey(meta["dagster"]["asset_key"])
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return dg.AssetKey([dbt_resource_props["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn") or []
        # fqn = [project, folder, ..., name]: the first folder is the layer.
        return fqn[1] if len(fqn) > 2 else "dbt"


translator = CostwatchTranslator(
    settings=DagsterDbtTranslatorSettings(enable_asset_checks=True, enable_code_references=False)
)


class DbtBuildConfig(dg.Config):
    full_refresh: bool = False


@dbt_assets(
    manifest=dbt_project.manifest_path, project=dbt_project, dagster_dbt_translator=translator
)
def costwatch_dbt_assets(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, config: DbtBuildConfig
):
    """`dbt build`: models, then their tests, in dependency order."""
    args = ["build"]
    variables = dbt_vars()
    if variables:
        args += ["--vars", json.dumps(variables)]
    if config.full_refresh:
        args.append("--full-refresh")
    yield from dbt.cli(args, context=context).stream()
