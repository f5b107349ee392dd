"""The proxy API (SPEC section 8), mounted at /api/."""

urlpatterns: list = []
