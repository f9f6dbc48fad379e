"""productcatalogservice: the 9 upstream Online Boutique products over gRPC (ListProducts/GetProduct/SearchProducts)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from splitproof.protos import demo_pb2, demo_pb2_grpc
from splitproof.setup.boutique.grpcutil import add_health, bind_and_start, new_grpc_server
from splitproof.verifier.boutique import PRODUCT_IDS as CONTRACT_IDS

SERVICE_NAME = "hipstershop.ProductCatalogService"
DEFAULT_PORT = 3550


@dataclass(frozen=True)
class ProductSpec:
    id: str
    name: str
    description: str
    picture: str
    units: int
    nanos: int
    categories: tuple[str, ...]

    def to_proto(self) -> demo_pb2.Product:
        return demo_pb2.Product(
            id=self.id,
            name=self.name,
            description=self.description,
            picture=self.picture,
            price_usd=demo_pb2.Money(currency_code="USD", units=self.units, nanos=self.nanos),
            categories=list(self.categories),
        )


# The upstream catalog (src/productcatalogservice/products.json), in upstream order.
_SPECS: tuple[ProductSpec, ...] = (
    ProductSpec("OLJCESPC7Z", "Sunglasses",
                "Add a modern touch to your outfits with these sleek aviator sunglasses.",
                "/static/img/products/sunglasses.jpg", 19, 990_000_000, ("accessories",)),
    ProductSpec("66VCHSJNUP", "Tank Top", "Perfectly cropped cotton tank, with a scooped neckline.",
                "/static/img/products/tank-top.jpg", 18, 990_000_000, ("clothing", "tops")),
    ProductSpec("1YMWWN1N4O", "Watch", "This gold-tone stainless steel watch will work with most of your outfits.",
                "/static/img/products/watch.jpg", 109, 990_000_000, ("accessories",)),
    ProductSpec("L9ECAV7KIM", "Loafers", "A neat addition to your summer wardrobe.",
                "/static/img/products/loafers.jpg", 89, 990_000_000, ("footwear",)),
    ProductSpec("2ZYFJ3GM2N", "Hairdryer",
                "This lightweight hairdryer has 3 heat and speed settings. It's perfect for travel.",
                "/static/img/products/hairdryer.jpg", 24, 990_000_000, ("hair", "beauty")),
    ProductSpec("0PUK6V6EV0", "Candle Holder", "This small but intricate candle holder is an excellent gift.",
                "/static/img/products/candle-holder.jpg", 18, 990_000_000, ("decor", "home")),
    ProductSpec("LS4PSXUNUM", "Salt & Pepper Shakers", "Add some flavor to your kitchen.",
                "/static/img/products/salt-and-pepper-shakers.jpg", 18, 490_000_000, ("kitchen",)),
    ProductSpec("9SIQT8TOJO", "Bamboo Glass Jar",
                "This bamboo glass jar can hold 57 oz (1.7 l) and is perfect for any kitchen.",
                "/static/img/products/bamboo-glass-jar.jpg", 5, 490_000_000, ("kitchen",)),
    ProductSpec("6E92ZMYYFZ", "Mug", "A simple mug with a mustard interior.",
                "/static/img/products/mug.jpg", 8, 990_000_000, ("kitchen",)),
)

PRODUCTS: tuple[demo_pb2.Product, ...] = tuple(spec.to_proto() for spec in _SPECS)
PRODUCT_IDS: tuple[str, ...] = tuple(p.id for p in PRODUCTS)
if PRODUCT_IDS != CONTRACT_IDS:  # one catalog: the served products are exactly the contract's ids, in its order
    raise RuntimeError("setup.boutique.catalog and verifier.boutique.PRODUCT_IDS disagree")


def find_product(product_id: str) -> demo_pb2.Product | None:
    for product in PRODUCTS:
        if product.id == product_id:
            return product
    return None


def search_products(query: str) -> list[demo_pb2.Product]:
    """Upstream semantics: case-insensitive substring of the name or the description."""
    q = query.lower()
    return [p for p in PRODUCTS if q in p.name.lower() or q in p.description.lower()]


class ProductCatalogServicer(demo_pb2_grpc.ProductCatalogServiceServicer):
    def __init__(self) -> None:
        self._list = demo_pb2.ListProductsResponse(products=list(PRODUCTS))

    def ListProducts(self, request: demo_pb2.Empty, context: grpc.ServicerContext) -> demo_pb2.ListProductsResponse:
        return self._list

    def GetProduct(self, request: demo_pb2.GetProductRequest, context: grpc.ServicerContext) -> demo_pb2.Product:
        product = find_product(request.id)
        if product is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no product with ID {request.id}")
        return product

    def SearchProducts(self, request: demo_pb2.SearchProductsRequest,
                       context: grpc.ServicerContext) -> demo_pb2.SearchProductsResponse:
        return demo_pb2.SearchProductsResponse(results=search_products(request.query))


def serve_catalog(host: str = "127.0.0.1", port: int = 0) -> tuple[grpc.Server, int]:
    """Build and start the catalog server; returns (server, bound port). Stop with ``server.stop(grace)``."""
    server = new_grpc_server()
    demo_pb2_grpc.add_ProductCatalogServiceServicer_to_server(ProductCatalogServicer(), server)
    add_health(server, SERVICE_NAME)
    return server, bind_and_start(server, host, port)
