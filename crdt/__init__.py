"""Pure cart-document logic: schema, validation, merge and the y-protocols codec (no I/O)."""
from .schema import Catalog, FieldSpec, Limits, Product
from .validate import Ok, Rejected, Verdict, validate
from .cart import CartDoc

__all__ = [
    "CartDoc", "Catalog", "FieldSpec", "Limits", "Ok", "Product", "Rejected", "Verdict", "validate",
]
