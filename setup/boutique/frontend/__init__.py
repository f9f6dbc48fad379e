"""The shop's HTTP frontend: what a browser (or the upstream Locust load generator) sees of Online Boutique.

Upstream behaviour kept where the split measurement depends on it:

- ``/product/{id}``: exactly ONE ``ListRecommendations(user_id=<session>, product_ids=[id])`` per page (that call is
  what Envoy splits), details for each recommended id, then only the **first 4** are shown, inside
  ``<section class="recommendations">`` ... ``<h2>You May Also Like</h2>``, one ``<div class="col-md-3">`` per item.
  An ad linking to a product is rendered outside that section. Recommendation call failing -> the page is still 200,
  without the section, and the failure is logged. Unknown product id -> 500.
- ``shop_session-id`` cookie (a UUID, set when missing) is the ``user_id``.
- Other routes: ``/``, ``/cart`` (GET/POST), ``/cart/empty``, ``/cart/checkout``, ``/setCurrency``, ``/logout``,
  ``/_healthz``, ``/robots.txt``. Static files are not served (404): pages reference upstream's image paths.

Not upstream: product details come from a short-TTL cache of ``ListProducts`` (throughput); an id missing from the
cache still goes to ``GetProduct`` (so an unknown id is NOT_FOUND -> 500). Prices are shown in USD (there is no
currency service); the chosen currency is only remembered in its cookie. Carts live in memory.

Modules: ``backends`` (catalog view, recommendations client, carts), ``pages`` (HTML rendering), ``shop`` (routes ->
pages), ``server`` (the HTTP handler and server), ``ratelog`` (rate-limited warnings).
"""

from __future__ import annotations

from splitproof.setup.boutique.frontend.server import FrontendHandler, FrontendServer, build_frontend, serve_frontend

__all__ = ["FrontendHandler", "FrontendServer", "build_frontend", "serve_frontend"]
