import dagster as dg
import pytest

from zqyy_assets.definitions import defs

DEFS = defs()


def test_definitions_load_and_resolve() -> None:
    # Resolving the job graph validates resources, partitions, checks and their wiring.
    repo = DEFS.get_repository_def()
    keys = {spec.key.to_user_string() for spec in DEFS.resolve_all_asset_specs()}
    assert {"dws_finance_area_daily", "dws_member_profile", "dws_assistant_member", "ods_settlements"} <= keys
    assert repo.get_implicit_global_asset_job_def() is not None
    check_keys = {key.name for key in DEFS.resolve_asset_graph().asset_check_keys}
    assert "finance_reconciles_with_ods" in check_keys


def test_resources_are_bound_from_environment() -> None:
    # Secrets and URLs come from the environment at run time, never from import-time branching.
    postgres = DEFS.resources["postgres"]
    assert isinstance(postgres.database_url, dg.EnvVar)
    assert postgres.database_url.env_var_name == "DATABASE_URL"


def test_ai_assets_checks_and_jobs_are_defined() -> None:
    keys = {spec.key.to_user_string() for spec in DEFS.resolve_all_asset_specs()}
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
    check_keys = {key.name for key in DEFS.resolve_asset_graph().asset_check_keys}
    assert {"app2_coverage", *(f"{name}_answers_valid" for name in ai)} <= check_keys
    chains = {
        "app2_prewarm_job": {"app2_finance"},
        "consumption_chain_job": {"app3_clue", "app8_consolidation", "app7_customer"},
        "consumption_assistant_chain_job": {"app4_analysis", "app5_tactics"},
        "note_chain_job": {"app6_note", "app8_consolidation"},
        "task_chain_job": {"app4_analysis", "app5_tactics"},
    }
    for name, assets in chains.items():
        job = DEFS.resolve_job_def(name)
        assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == assets, name
    # the LLM resource binds its settings from the environment, so the UI shows each variable
    llm = DEFS.resources["llm"]
    assert isinstance(llm.database_url, dg.EnvVar) and llm.database_url.env_var_name == "DATABASE_URL"


def test_llm_settings_are_bound_from_environment_variables(monkeypatch) -> None:
    monkeypatch.setenv("ZQYY_LLM_PROVIDER", "offline")
    llm = defs().resources["llm"]
    assert isinstance(llm.provider, dg.EnvVar) and llm.provider.env_var_name == "ZQYY_LLM_PROVIDER"


def test_the_venue_calendar_is_bound_from_its_variables_when_set(monkeypatch) -> None:
    monkeypatch.setenv("VENUE_TIMEZONE", "Asia/Tokyo")
    monkeypatch.delenv("BUSINESS_DAY_CUTOFF_HOURS", raising=False)
    calendar = defs().resources["venue_calendar"]
    assert isinstance(calendar.timezone, dg.EnvVar) and calendar.timezone.env_var_name == "VENUE_TIMEZONE"
    assert calendar.business_day_cutoff_hours == 6  # unset: the default, as the partitions have it


def test_dws_business_dates_are_in_the_venues_zone(monkeypatch) -> None:
    monkeypatch.setenv("VENUE_TIMEZONE", "America/New_York")
    asset = defs().resolve_assets_def("dws_finance_area_daily")
    assert isinstance(asset.partitions_def, dg.DailyPartitionsDefinition)
    assert asset.partitions_def.timezone == "America/New_York"
    # the keys stay business dates, one a day
    assert asset.partitions_def.get_first_partition_key() == "2025-01-01"


def test_a_bad_venue_zone_fails_the_load(monkeypatch) -> None:
    monkeypatch.setenv("VENUE_TIMEZONE", "Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="VENUE_TIMEZONE"):
        defs()


def test_partition_mappings_validate_as_dagster_definitions_validate_does() -> None:
    # `dagster definitions validate` checks every dependency's partition mapping; app2's 72
    # windows read all the DWS business dates, which needs an explicit mapping.
    DEFS.resolve_asset_graph().validate_partitions()
