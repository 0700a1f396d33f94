"""Pure cart-document logic: schema, validation, merge and the y-protocols codec (no I/O)."""
from .schema import Catalog, FieldSpec, Limits, Product
from .validate import Ok, Rejected, Verdict, validate
from .cart import CartDoc
from .merge import HoldMove, MergeError, MergePlan, apply_merge, check_mergeable, merged_source_status, plan_merge, settle_holds  # noqa: F401

__all__ = [
    "CartDoc", "Catalog", "FieldSpec", "Limits", "Ok", "Product", "Rejected", "Verdict", "validate",
]
