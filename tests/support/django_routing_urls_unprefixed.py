"""django_routing_urls with ``i18n_patterns(..., prefix_default_language=False)``."""

from .django_routing_urls import build

urlpatterns = build(prefix_default_language=False)
