"""Pure cart-document logic: schema, validation, the server root, merge and the y-protocols codec (no I/O)."""
from .schema import Catalog, FieldSpec, Limits, Product
from .validate import Accepted, Rejected, Verdict
from .cart import CartDoc, validate
from . import server_root  # noqa: F401
from .merge import HoldMove, MergeError, MergePlan, apply_merge, check_mergeable, merged_source_status, plan_merge, settle_holds  # noqa: F401

__all__ = [
    "Accepted", "CartDoc", "Catalog", "FieldSpec", "Limits", "Product", "Rejected", "Verdict", "server_root",
    "validate",
]
