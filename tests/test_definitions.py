import dagster as dg

from zqyy_assets.definitions import defs


def test_definitions_load_and_resolve() -> None:
    # Resolving the job graph validates resources, partitions, checks and their wiring.
    repo = defs.get_repository_def()
    keys = {spec.key.to_user_string() for spec in defs.resolve_all_asset_specs()}
    assert {"dws_finance_area_daily", "dws_member_profile", "dws_assistant_member", "ods_settlements"} <= keys
    assert repo.get_implicit_global_asset_job_def() is not None
    check_keys = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert "finance_reconciles_with_ods" in check_keys


def test_resources_are_bound_from_environment() -> None:
    # Secrets and URLs come from the environment at run time, never from import-time branching.
    postgres = defs.resources["postgres"]
    assert isinstance(postgres.database_url, dg.EnvVar)
    assert postgres.database_url.env_var_name == "DATABASE_URL"
