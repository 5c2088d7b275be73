"""The batch estimate's app graph is the event chains' (zqyy_assets.core.chains), not a copy."""

from api.services import batch


def test_upstream_apps_are_every_app_before_it_in_a_chain() -> None:
    assert set(batch.UPSTREAM["app8_consolidation"]) == {"app3_clue", "app6_note"}
    assert set(batch.UPSTREAM["app7_customer"]) == {"app3_clue", "app8_consolidation"}
    assert batch.UPSTREAM["app5_tactics"] == ("app4_analysis",)
    assert batch.UPSTREAM["app3_clue"] == batch.UPSTREAM["app6_note"] == batch.UPSTREAM["app4_analysis"] == ()


def test_each_app_is_estimated_after_its_upstream_apps() -> None:
    for apps in (batch.MEMBER_APPS, batch.PAIR_APPS):
        for i, app in enumerate(apps):
            assert set(batch.UPSTREAM[app]) <= set(apps[:i]), (app, apps)
    assert set(batch.MEMBER_APPS) == {"app3_clue", "app6_note", "app8_consolidation", "app7_customer"}
    assert batch.PAIR_APPS == ("app4_analysis", "app5_tactics")
