"""The demo shop that `livecart demo` loads: a few dozen products, some with a single unit."""
from __future__ import annotations

from ..crdt import FieldSpec, Product
from .catalog import CatalogCache
from .stock import StockAuthority

# sku, name, price (cents), on hand
DEMO_PRODUCTS = [
    ("MUG-CLASSIC", "Classic stoneware mug", 1290, 40),
    ("MUG-LAST", "Hand-thrown mug, one of a kind", 4800, 1),
    ("TEE-ORG-M", "Organic cotton tee, M", 2500, 25),
    ("TEE-ORG-L", "Organic cotton tee, L", 2500, 18),
    ("HOODIE-GRY", "Heavyweight hoodie, grey", 6900, 6),
    ("CAP-NAVY", "Wool cap, navy", 2200, 12),
    ("SCARF-MERINO", "Merino scarf", 5900, 3),
    ("TOTE-CANVAS", "Canvas tote bag", 1800, 60),
    ("NOTEBOOK-A5", "A5 dotted notebook", 1400, 80),
    ("PEN-BRASS", "Brass fountain pen", 7500, 2),
    ("CANDLE-FIG", "Fig & cedar candle", 3200, 15),
    ("CANDLE-VINTAGE", "Vintage brass candlestick", 8900, 1),
    ("PLANT-POT-S", "Terracotta pot, small", 900, 30),
    ("PLANT-POT-L", "Terracotta pot, large", 2900, 8),
    ("VASE-GLASS", "Blown-glass vase", 12900, 1),
    ("THROW-WOOL", "Wool throw blanket", 11900, 4),
    ("CUSHION-LINEN", "Linen cushion cover", 3900, 20),
    ("LAMP-DESK", "Desk lamp, oak", 14900, 5),
    ("PRINT-A3-SEA", "Art print A3, seascape", 3500, 10),
    ("PRINT-ORIGINAL", "Original watercolour, signed", 39000, 1),
    ("COFFEE-BEANS", "Single-origin coffee beans 250 g", 1600, 100),
    ("TEA-SENCHA", "Sencha green tea 100 g", 1300, 45),
    ("CHOC-DARK", "Dark chocolate bar 85%", 450, 200),
    ("SOAP-OLIVE", "Olive oil soap", 700, 70),
    ("SOCKS-WOOL", "Wool socks", 1500, 35),
    ("UMBRELLA", "Storm umbrella", 4500, 9),
    ("WATCH-VINTAGE", "1960s wristwatch, restored", 65000, 1),
    ("BOOK-COOK", "Seasonal cookbook", 3400, 12),
    ("BOARDGAME", "Strategy board game", 4900, 7),
    ("GIFT-CARD-50", "Gift card 50 €", 5000, 1000),
]

# The first word of a SKU names its category (customers are found by a category bought).
CATEGORIES = {"MUG": "kitchen", "COFFEE": "pantry", "TEA": "pantry", "CHOC": "pantry", "TEE": "clothing",
              "HOODIE": "clothing", "CAP": "clothing", "SCARF": "clothing", "SOCKS": "clothing",
              "NOTEBOOK": "stationery", "PEN": "stationery", "BOOK": "books", "PRINT": "art", "VASE": "home",
              "CANDLE": "home", "PLANT": "home", "THROW": "home", "CUSHION": "home", "LAMP": "home"}

INVITATION = Product(
    "INVITE-WEDDING", "Wedding invitations, set of 50", 18900, "EUR", 4,
    {"names": FieldSpec("text", max_length=120, required=True),
     "date": FieldSpec("text", max_length=60, required=True),
     "wording": FieldSpec("text", max_length=1200, required=True),
     "guests": FieldSpec("list", max_length=120, max_items=300)},
)


async def load_demo(catalog: CatalogCache, stock: StockAuthority) -> None:
    """Adds the demo products that are missing; never touches a shop's own data."""
    for sku, name, price, on_hand in DEMO_PRODUCTS:
        if catalog.get(sku) is None:
            category = CATEGORIES.get(sku.split("-")[0], "gifts")
            await catalog.put(Product(sku, name, price, "EUR", 10, category=category))
            await stock.set_on_hand(sku, on_hand)
    if catalog.get(INVITATION.sku) is None:
        await catalog.put(INVITATION)
        await stock.set_on_hand(INVITATION.sku, 500)
