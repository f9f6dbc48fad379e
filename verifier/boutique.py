"""The Online Boutique contract the verifier attributes against -- shared by the local services (setup/boutique),
the Locust file and verify-split's live sampler, so that none of them imports another's internals.

Upstream facts (GoogleCloudPlatform/microservices-demo, src/productcatalogservice/products.json,
src/recommendationservice/recommendation_server.py, src/frontend/handlers.go and templates/recommendations.html):
the catalog has 9 products; recommendationservice answers ``min(max_responses, remaining)`` ids -- 5 in production,
2 in the lab's canary; the frontend keeps only the first 4 ("to fit the UI") inside
``<section class="recommendations">``, one ``<div class="col-md-3">`` per item.
"""

from __future__ import annotations

# The upstream catalog's product ids, in upstream order.
PRODUCT_IDS: tuple[str, ...] = (
    "OLJCESPC7Z", "66VCHSJNUP", "1YMWWN1N4O", "L9ECAV7KIM", "2ZYFJ3GM2N",
    "0PUK6V6EV0", "LS4PSXUNUM", "9SIQT8TOJO", "6E92ZMYYFZ",
)

# recommendationservice's max_responses per version: production as upstream, the lab's canary patched to 2.
MAX_RESPONSES: dict[str, int] = {"production": 5, "canary": 2}

# The frontend shows at most this many recommendations on a product page.
MAX_SHOWN = 4

# Items per version on each channel: a direct gRPC ListRecommendations call, and a product page.
GRPC_ITEMS: dict[int, str] = {n: v for v, n in MAX_RESPONSES.items()}
PAGE_ITEMS: dict[int, str] = {min(n, MAX_SHOWN): v for v, n in MAX_RESPONSES.items()}

# The recommendations section's markup, as the upstream template writes it.
SECTION_OPEN = '<section class="recommendations">'
SECTION_CLOSE = "</section>"
ITEM_OPEN = '<div class="col-md-3">'
SECTION_HEADING = "<h2>You May Also Like</h2>"
