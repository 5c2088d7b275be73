"""Which provider answers an app: its route, and the fallback when the route cannot answer.

Each app has one route (``Route``): its provider, ``ZQYY_LLM_PROVIDER_<APP>`` else
``ZQYY_LLM_PROVIDER`` (``auto``: dashscope with a DashScope key, else offline), and for the
OpenAI-compatible provider its model, ``ZQYY_LLM_MODEL_<APP>`` else ``ZQYY_LLM_MODEL``. So
finance may ask a Bailian app while the chat asks a local model.

The route is part of an answer's memo key (``Route.memo_provider``, into ``cache.app_version``):
changing an app's provider or model asks again. A DashScope route's key is ``dashscope`` alone,
as before routing existed (its model is the Bailian app's business), so cached answers stay hits.

``ZQYY_LLM_FALLBACK_PROVIDER`` (optional) answers for any app whose own provider is refused by
its open circuit breaker, or fails permanently for a reason other than the input
(``fallback_for``): a bad key, a missing app id or model, a model the server does not have,
an account in arrears. Not for content refused by inspection or an over-long prompt
(``errors.about_input``: another provider would get the same input), not for the per-answer
request cap, a budget or rate refusal, or a transient failure (those open the breaker, and then
the fallback answers). The fallback's call is a call of its own: its ledger row names the
fallback provider and ``fallback_for`` the primary, its answer carries ``"_provider"``, and its
cache row is memoized under the fallback's route, so the next run asks the primary again.

The circuit breaker is the app's primary route's: a fallback call neither checks nor moves it
(the fallback answers exactly while that breaker is open); the rate limit and the budget apply
to every call.
"""

from __future__ import annotations

from dataclasses import dataclass

from zqyy_assets.core.apps import APP_NAMES
from zqyy_assets.core.llm.errors import CircuitOpen, LLMError, PermanentLLMError, about_input
from zqyy_assets.core.llm.settings import LLMSettings

# Permanent errors that are about this answer, not the provider: the fallback would hit them too.
NO_FALLBACK_CODES = frozenset({"RequestCapReached"})


@dataclass(frozen=True)
class Route:
    provider: str  # dashscope | openai | offline
    model: str | None = None  # the OpenAI-compatible model (None for the others)

    @property
    def memo_provider(self) -> str:
        """The route as the memo key names it: ``openai/<model>``, else the provider."""
        return f"{self.provider}/{self.model}" if self.provider == "openai" and self.model else self.provider


def route_for(settings: LLMSettings, app_name: str, provider: str | None = None) -> Route:
    """The app's route, or its route through ``provider`` (the fallback)."""
    provider = provider or settings.provider_for(app_name)
    return Route(provider, settings.model_for(app_name) if provider == "openai" else None)


def routes(settings: LLMSettings) -> dict[str, Route]:
    """Every app's route, by app name."""
    return {name: route_for(settings, name) for name in APP_NAMES}


def fallback_for(settings: LLMSettings, app_name: str, primary: Route, error: LLMError) -> Route | None:
    """The fallback route when ``error`` of the primary allows one, else None."""
    fallback = settings.fallback_provider
    if not fallback or fallback == primary.provider:
        return None
    if isinstance(error, CircuitOpen):
        return route_for(settings, app_name, fallback)
    if isinstance(error, PermanentLLMError) and not about_input(error.code) and error.code not in NO_FALLBACK_CODES:
        return route_for(settings, app_name, fallback)
    return None
