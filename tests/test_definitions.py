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


def test_ai_assets_checks_and_jobs_are_defined() -> None:
    keys = {spec.key.to_user_string() for spec in defs.resolve_all_asset_specs()}
    ai = {
        "app2_finance",
        "app3_clue",
        "app4_analysis",
        "app5_tactics",
        "app6_note",
        "app7_customer",
        "app8_consolidation",
    }
    assert ai <= keys
    check_keys = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert {"app2_coverage", *(f"{name}_answers_valid" for name in ai)} <= check_keys
    chains = {
        "app2_prewarm_job": {"app2_finance"},
        "consumption_chain_job": {"app3_clue", "app8_consolidation", "app7_customer"},
        "consumption_assistant_chain_job": {"app4_analysis", "app5_tactics"},
        "note_chain_job": {"app6_note", "app8_consolidation"},
        "task_chain_job": {"app4_analysis", "app5_tactics"},
    }
    for name, assets in chains.items():
        job = defs.resolve_job_def(name)
        assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == assets, name
    # the LLM resource binds only the database; the provider is chosen from the environment at run time
    llm = defs.resources["llm"]
    assert isinstance(llm.database_url, dg.EnvVar) and llm.provider is None
