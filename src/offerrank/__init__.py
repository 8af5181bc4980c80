"""offerrank."""
