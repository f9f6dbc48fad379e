"""The shop's pages as HTML (pure functions): the upstream markup where the split measurement depends on it --
the recommendations section (splitproof.verifier.boutique: at most 4 items) outside which an ad is rendered."""

from __future__ import annotations

import html
import random
from collections.abc import Sequence
from dataclasses import dataclass

from splitproof.protos import demo_pb2
from splitproof.verifier.boutique import ITEM_OPEN, SECTION_CLOSE, SECTION_HEADING, SECTION_OPEN


def format_money(money: demo_pb2.Money, quantity: int = 1) -> str:
    nanos_total = (money.units * 1_000_000_000 + money.nanos) * quantity
    units, nanos = divmod(nanos_total, 1_000_000_000)
    symbol = "$" if money.currency_code in ("", "USD") else money.currency_code + " "
    return f"{symbol}{units}.{nanos // 10_000_000:02d}"


def _total(items: Sequence[tuple[demo_pb2.Product, int]]) -> demo_pb2.Money:
    nanos = sum((p.price_usd.units * 1_000_000_000 + p.price_usd.nanos) * q for p, q in items)
    units, rest = divmod(nanos, 1_000_000_000)
    return demo_pb2.Money(currency_code="USD", units=units, nanos=rest)


@dataclass(frozen=True)
class PageContext:
    session_id: str
    currency: str
    cart_size: int


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _layout(title: str, body: str, ctx: PageContext) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"UTF-8\">\n"
        f"<title>{_e(title)} | Online Boutique</title>\n</head>\n<body>\n"
        "<header>\n<div class=\"navbar\">\n<a href=\"/\" class=\"navbar-brand\">Online Boutique</a>\n"
        "<form method=\"POST\" action=\"/setCurrency\" class=\"controls\">\n"
        f"<span class=\"currency\">{_e(ctx.currency)}</span>\n"
        "<input type=\"hidden\" name=\"currency_code\" value=\"USD\">\n</form>\n"
        f"<a href=\"/cart\" class=\"cart-link\">Cart ({ctx.cart_size})</a>\n</div>\n</header>\n"
        f"{body}\n"
        f"<footer class=\"py-5\">\n<p>session-id: {_e(ctx.session_id)}</p>\n</footer>\n</body>\n</html>\n"
    )


def render_recommendations(products: Sequence[demo_pb2.Product]) -> str:
    """The upstream recommendations section; empty string when there is nothing to show (as upstream)."""
    if not products:
        return ""
    items = "".join(
        f"{ITEM_OPEN}\n<div>\n"
        f"<a href=\"/product/{_e(p.id)}\">\n<img alt=\"\" src=\"{_e(p.picture)}\">\n</a>\n"
        f"<div>\n<h5>\n{_e(p.name)}\n</h5>\n</div>\n</div>\n</div>\n"
        for p in products
    )
    return (
        f"{SECTION_OPEN}\n<div class=\"container\">\n<div class=\"row\">\n"
        f"<div class=\"col-xl-10 offset-xl-1\">\n{SECTION_HEADING}\n<div class=\"row\">\n"
        f"{items}</div>\n</div>\n</div>\n</div>\n{SECTION_CLOSE}\n"
    )


def render_ad(product: demo_pb2.Product | None) -> str:
    """A text ad linking to a product -- outside the recommendations section, as upstream."""
    if product is None:
        return ""
    return (
        "<div class=\"ad\">\n<div class=\"container py-3 px-lg-5 py-lg-5\">\n<div role=\"alert\">\n"
        f"<strong>Ad</strong>\n<a href=\"/product/{_e(product.id)}\" rel=\"nofollow noopener noreferrer\" "
        f"target=\"_blank\">\n{_e(product.name)} for {_e(format_money(product.price_usd))}\n</a>\n"
        "</div>\n</div>\n</div>\n"
    )


def render_home(products: Sequence[demo_pb2.Product], ad: demo_pb2.Product | None, ctx: PageContext) -> str:
    cards = "".join(
        "<div class=\"col-md-4 hot-product-card\">\n"
        f"<a href=\"/product/{_e(p.id)}\">\n<img alt=\"\" src=\"{_e(p.picture)}\">\n</a>\n"
        f"<div class=\"hot-product-card-name\">{_e(p.name)}</div>\n"
        f"<div class=\"hot-product-card-price\">{_e(format_money(p.price_usd))}</div>\n</div>\n"
        for p in products
    )
    body = (
        "<main role=\"main\" class=\"home\">\n<div class=\"container-fluid\">\n<div class=\"row\">\n"
        f"<h3>Hot Products</h3>\n{cards}</div>\n</div>\n</main>\n{render_ad(ad)}"
    )
    return _layout("Home", body, ctx)


def render_product(product: demo_pb2.Product, recommendations: Sequence[demo_pb2.Product] | None,
                   ad: demo_pb2.Product | None, ctx: PageContext) -> str:
    options = "".join(f"<option>{q}</option>" for q in (1, 2, 3, 4, 5, 10))
    body = (
        "<main role=\"main\">\n<div class=\"h-product container\">\n<div class=\"row\">\n"
        f"<div class=\"col-md-6\">\n<img class=\"product-image\" alt=\"\" src=\"{_e(product.picture)}\" />\n</div>\n"
        "<div class=\"product-info col-md-5\">\n<div class=\"product-wrapper\">\n"
        f"<h2>{_e(product.name)}</h2>\n<p class=\"product-price\">{_e(format_money(product.price_usd))}</p>\n"
        f"<p>{_e(product.description)}</p>\n"
        "<form method=\"POST\" action=\"/cart\">\n"
        f"<input type=\"hidden\" name=\"product_id\" value=\"{_e(product.id)}\" />\n"
        f"<select name=\"quantity\" id=\"quantity\">{options}</select>\n"
        "<button type=\"submit\" class=\"cymbal-button-primary\">Add To Cart</button>\n</form>\n"
        "</div>\n</div>\n</div>\n</div>\n"
        f"<div>\n{render_recommendations(recommendations or [])}</div>\n"
        f"{render_ad(ad)}</main>\n"
    )
    return _layout(product.name, body, ctx)


def render_cart(items: Sequence[tuple[demo_pb2.Product, int]],
                recommendations: Sequence[demo_pb2.Product] | None, ctx: PageContext) -> str:
    if items:
        rows = "".join(
            "<div class=\"row cart-summary-item-row\">\n"
            f"<div class=\"col-md-4\"><a href=\"/product/{_e(p.id)}\">{_e(p.name)}</a></div>\n"
            f"<div class=\"col\">Quantity: {q}</div>\n"
            f"<div class=\"col text-right\">{_e(format_money(p.price_usd, q))}</div>\n</div>\n"
            for p, q in items
        )
        content = (
            f"<h3>Cart ({sum(q for _, q in items)})</h3>\n{rows}"
            f"<div class=\"row cart-summary-total-row\">Total: {_e(format_money(_total(items)))}</div>\n"
            "<form method=\"POST\" action=\"/cart/empty\"><button type=\"submit\">Empty Cart</button></form>\n"
            "<form method=\"POST\" action=\"/cart/checkout\"><button type=\"submit\">Place Order</button></form>\n"
        )
    else:
        content = "<h3>Your shopping cart is empty!</h3>\n<a href=\"/\">Continue Shopping</a>\n"
    body = (
        f"<main role=\"main\" class=\"cart-sections\">\n<section class=\"container\">\n{content}</section>\n"
        f"<div>\n{render_recommendations(recommendations or [])}</div>\n</main>\n"
    )
    return _layout("Cart", body, ctx)


def render_order(order_id: str, items: Sequence[tuple[demo_pb2.Product, int]],
                 recommendations: Sequence[demo_pb2.Product] | None, ctx: PageContext) -> str:
    body = (
        "<main role=\"main\" class=\"order\">\n<section class=\"container order-complete-section\">\n"
        "<h3>Your order is complete!</h3>\n"
        f"<p>Confirmation #: <span class=\"order-id\">{_e(order_id)}</span></p>\n"
        f"<p>Total paid: {_e(format_money(_total(items)))}</p>\n"
        "<a href=\"/\" class=\"cymbal-button-primary\">Continue Shopping</a>\n</section>\n"
        f"<div>\n{render_recommendations(recommendations or [])}</div>\n</main>\n"
    )
    return _layout("Order complete", body, ctx)


def render_error(status: int, reason: str, message: str, ctx: PageContext) -> str:
    body = (
        "<main role=\"main\">\n<div class=\"container\">\n<h3>Uh, oh!</h3>\n"
        "<p>Something has failed. Below are some details for debugging.</p>\n"
        f"<p><strong>HTTP Status:</strong> {status} {_e(reason)}</p>\n<pre>{_e(message)}</pre>\n</div>\n</main>\n"
    )
    return _layout("Error", body, ctx)


def pick_ad(products: Sequence[demo_pb2.Product], current: demo_pb2.Product | None,
            rng: random.Random | None = None) -> demo_pb2.Product | None:
    """An ad for another product, preferring one sharing a category with ``current`` (like upstream's adservice)."""
    others = [p for p in products if current is None or p.id != current.id]
    if not others:
        return None
    if current is not None:
        related = [p for p in others if set(p.categories) & set(current.categories)]
        others = related or others
    return (rng or random).choice(others)
